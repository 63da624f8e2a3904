"""Tools: schemas from type hints and docstrings, argument checking, the sandbox tools' behaviour."""

from __future__ import annotations

from typing import Literal

import pytest

from aarlab.agent import ToolContext, ToolError, registered_tools
from aarlab.agent.tools import check_arguments, tool_spec
from aarlab.agent.tools._registry import Tool


def sample(ctx: ToolContext, path: str, mode: Literal["a", "b"], count: int = 3, ratio: float | None = None,
           tags: list[str] | None = None, flag: bool = False) -> str:
    """Do a sample thing.

    Longer explanation.

    Args:
        path: Where to do it,
            over two lines.
        mode: Which mode.
        count: How many.
        ratio: A ratio.
        tags: Some tags.
        flag: A flag.
    """
    return "ok"


def test_schema_comes_from_type_hints_and_the_docstring():
    spec = tool_spec(sample)
    assert spec.name == "sample" and spec.description == "Do a sample thing.\n\nLonger explanation."
    props = spec.parameters["properties"]
    assert props["path"] == {"type": "string", "description": "Where to do it, over two lines."}
    assert props["mode"]["enum"] == ["a", "b"] and props["mode"]["type"] == "string"
    assert props["count"] == {"type": "integer", "description": "How many.", "default": 3}
    assert props["ratio"]["type"] == "number" and "default" not in props["ratio"]
    assert props["tags"]["items"] == {"type": "string"} and props["flag"]["type"] == "boolean"
    assert spec.parameters["required"] == ["path", "mode"]
    assert spec.parameters["additionalProperties"] is False


def test_undocumented_arguments_are_refused_when_the_tool_is_defined():
    def bad(ctx, x: int) -> str:
        """No args section."""

    with pytest.raises(TypeError, match="document argument"):
        tool_spec(bad)


def test_arguments_are_checked_and_safely_coerced():
    t = Tool("sample", sample, tool_spec(sample))
    assert check_arguments(t, {"path": 5, "mode": "a", "count": "7", "flag": "true"}) == {
        "path": "5", "mode": "a", "count": 7, "flag": True}
    for bad, message in [({"mode": "a"}, "missing required"), ({"path": "p", "mode": "c"}, "one of"),
                         ({"path": "p", "mode": "a", "count": 1.5}, "must be integer"),
                         ({"path": "p", "mode": "a", "extra": 1}, "unknown argument"),
                         ({"__invalid_json__": "{oops"}, "not valid JSON")]:
        with pytest.raises(ToolError, match=message):
            check_arguments(t, bad)


def test_the_built_in_tools_are_all_registered_with_schemas():
    names = set(registered_tools())
    assert names >= {"bash", "python", "read_file", "write_file", "edit_file", "list_files", "submit_predictions",
                     "leaderboard", "forum_post", "forum_read", "forum_reply", "forum_search", "snapshot_publish",
                     "snapshot_fetch", "consult", "finish"}
    for t in registered_tools().values():
        assert t.spec.description and t.spec.parameters["type"] == "object"


def run_tool(agent, name, **arguments):
    ctx = ToolContext(agent=agent, sandbox=agent.sandbox, client=agent.client, task=agent.task, state=agent.state)
    return registered_tools()[name](ctx, arguments)


def test_file_tools_in_a_real_sandbox(make_agent, make_sandbox):
    agent = make_agent([], sandbox=make_sandbox("ws", "bwrap"))
    assert "wrote src/a.py" in run_tool(agent, "write_file", path="src/a.py", content="x = 1\ny = 2\nprint(x + y)\n")
    assert "3" in run_tool(agent, "bash", command="python src/a.py")
    assert "3" in run_tool(agent, "python", code="print(1 + 2)")
    edited = run_tool(agent, "edit_file", path="/workspace/src/a.py", old="y = 2", new="y = 20")
    assert "line 2" in edited and "y = 20" in edited
    with pytest.raises(ToolError, match="does not occur"):
        run_tool(agent, "edit_file", path="src/a.py", old="z = 3", new="z = 4")
    run_tool(agent, "write_file", path="dup.txt", content="a\na\n")
    with pytest.raises(ToolError, match="occurs 2 times"):
        run_tool(agent, "edit_file", path="dup.txt", old="a", new="b")
    window = run_tool(agent, "read_file", path="src/a.py", offset=2, limit=1)
    assert window == "[src/a.py: lines 2-2 of 3]\ny = 20\n[... 1 more lines; read on with offset=3]"
    assert '"label_space"' in run_tool(agent, "read_file", path="/task/task.json", limit=1000)
    assert "src/a.py" in run_tool(agent, "list_files")
    with pytest.raises(ToolError, match="only your workspace"):
        run_tool(agent, "write_file", path="/task/x", content="no")
    with pytest.raises(ToolError, match="exit code 1"):
        run_tool(agent, "bash", command="cat /etc/shadow")


def test_long_tool_output_is_cut_in_the_middle(make_agent, make_sandbox):
    agent = make_agent([{"tool": "bash", "arguments": {"command": "seq 1 20000"}}], sandbox=make_sandbox(),
                       tool_output_chars=1000, max_steps=1)
    agent.run()
    content = agent.messages[3].content
    assert "characters cut" in content and content.startswith("exit code 0") and "20000" in content
    assert len(content) < 1300


def test_a_timeout_kills_the_command(make_agent, make_sandbox):
    agent = make_agent([], sandbox=make_sandbox(), tool_timeout_s=1)
    with pytest.raises(ToolError, match="timed out"):
        run_tool(agent, "bash", command="sleep 30", timeout=100)
