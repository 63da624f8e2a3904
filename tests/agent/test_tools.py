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


def test_forum_read_shows_other_agents_metrics_bounded():
    from aarlab.agent.tools._lab_tools import _fmt_post
    from aarlab.server.schemas import Post

    # A server from before metrics were bounded may still hold such a post: the tool cuts it.
    post = Post(id=1, kind="insight", title="t", body="b", tags=[], author="mallory", agent_id=1, created=0.0,
                metrics={f"k{i}": "x" * 1000 for i in range(1000)})
    text = _fmt_post(post)
    assert len(text) < 1_000 and "[...cut]" in text


def test_submit_predictions_sends_several_seeds_in_one_submission(make_agent, make_sandbox, tmp_path, task_dir):
    """Seeds as several files, or one file of lists: one submission whose reply is the mean ± seed SE."""
    import json

    from aarlab.server.testing import running_lab
    from aarlab.w2s.taskdir import TaskDir

    labels = [r["label"] for r in TaskDir(task_dir).test_labels()]
    with running_lab(tmp_path / "lab", task_dir=task_dir) as lab:
        creds = lab.client().create_agent("ada")
        with lab.client(creds.token) as client:
            agent = make_agent([], sandbox=make_sandbox(), client=client)
            agent.task = lab.task_name
            runs = [labels, [1 - y for y in labels], labels]
            for i, run in enumerate(runs):
                run_tool(agent, "write_file", path=f"p{i}.json", content=json.dumps(run))
            run_tool(agent, "write_file", path="seeds.json", content=json.dumps(runs))
            from_files = run_tool(agent, "submit_predictions", path=["p0.json", "p1.json", "p2.json"])
            from_one = run_tool(agent, "submit_predictions", path="seeds.json")
            single = run_tool(agent, "submit_predictions", path="p0.json")
            records = lab.client().submissions()
    assert "(3 seeds)" in from_files and "(3 seeds)" in from_one and "(1 seed)" in single
    assert "seed SE" in from_files and "submission_id=" in from_files
    assert [r.n_seeds for r in records] == [3, 3, 1] and records[0].seed_predictions == runs
