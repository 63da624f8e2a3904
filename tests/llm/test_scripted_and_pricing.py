"""The scripted provider (lists, generators, YAML, named scripts), the registry, and the price table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aarlab.errors import UserError
from aarlab.llm import (
    GenerateConfig,
    Message,
    Price,
    ScriptExhausted,
    find_price,
    get_model,
    known_providers,
    price_table,
    register_script,
    registered_scripts,
)


def user(text="go"):
    return [Message(role="user", content=text)]


def test_a_list_script_plays_back_tool_calls_then_finishes():
    model = get_model("scripted", script=[{"tool": "bash", "arguments": {"command": "ls"}},
                                          {"content": "two", "tool_calls": [{"read_file": {"path": "x"}},
                                                                            {"name": "bash", "arguments": {}}]},
                                          "done"])
    first = model.generate(user(), [])
    assert first.message.tool_calls[0].name == "bash" and first.stop_reason == "tool_use"
    second = model.generate(user(), [])
    assert [c.name for c in second.message.tool_calls] == ["read_file", "bash"]
    assert len({c.id for c in second.message.tool_calls}) == 2
    assert model.generate(user(), []).message.content == "done"
    assert model.generate(user(), []).message.content.startswith("I have finished")


def test_exhausted_script_can_raise_and_a_bad_step_fails_at_build_time():
    model = get_model("scripted", script=["one"], on_exhausted="error")
    model.generate(user(), [])
    with pytest.raises(ScriptExhausted):
        model.generate(user(), [])
    with pytest.raises(UserError, match="unknown key"):
        get_model("scripted", script=[{"tol": "bash"}])


def test_a_generator_sees_the_conversation():
    model = get_model("scripted", generator=lambda messages: f"you said {messages[-1].content}")
    assert model.generate(user("hello"), []).message.content == "you said hello"


def test_yaml_scripts_load_from_a_path(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("steps:\n  - tool: bash\n    arguments: {command: echo hi}\n  - Finished.\n"
                    "usage: {input_tokens: 100, output_tokens: 10}\nprices: {input: 3, output: 15}\n")
    model = get_model(f"scripted:{path}")
    out = model.generate(user(), [])
    assert out.message.tool_calls[0].arguments == {"command": "echo hi"}
    assert out.usage.input_tokens == 100 and out.cost_usd == pytest.approx((100 * 3 + 10 * 15) / 1e6)
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [{tool: bash, argz: 1}]\n")
    with pytest.raises(UserError, match="argz"):
        get_model(f"scripted:{bad}")


def test_named_scripts_come_from_the_registry():
    register_script("unit-test-script", lambda **options: ["from the registry"])
    assert "unit-test-script" in registered_scripts()
    assert get_model("scripted:unit-test-script").generate(user(), []).message.content == "from the registry"
    with pytest.raises(UserError, match="no script of that name"):
        get_model("scripted:no-such-script-anywhere")


def _fresh_python(code: str, extra_path=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter, so that nothing has imported aarlab.team yet."""
    import os

    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_importing_the_providers_never_imports_the_team():
    done = _fresh_python("import sys, aarlab.llm; from aarlab.llm import get_model; get_model('scripted', "
                         "script=['x']); print(sorted(m for m in sys.modules if m.startswith('aarlab.team')))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_named_scripts_are_found_through_their_entry_point_in_a_fresh_process(tmp_path):
    # A package of someone else's declares a script the way aarlab.team declares demo: an entry point of the
    # aarlab.scripts group. aarlab.llm finds it by name without importing anything it was not told about.
    (tmp_path / "elsewhere_scripts.py").write_text(
        "def make(**options):\n    return ['hello from an entry point']\n")
    dist = tmp_path / "elsewhere_scripts-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: elsewhere-scripts\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[aarlab.scripts]\nfrom-elsewhere = elsewhere_scripts:make\n")
    code = ("import sys; from aarlab.llm import Message, get_model, registered_scripts; "
            "assert 'from-elsewhere' in registered_scripts(); "
            "model = get_model('scripted:from-elsewhere'); "
            "print(model.generate([Message(role='user', content='go')], []).message.content, '|', "
            "'aarlab.team' in sys.modules)")
    done = _fresh_python(code, extra_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello from an entry point | False"


def test_the_demo_researcher_is_found_in_a_fresh_process():
    from importlib.metadata import entry_points

    if "demo" not in {ep.name for ep in entry_points(group="aarlab.scripts")}:
        pytest.skip("aarlab's aarlab.scripts entry points are not installed (pip install -e . after pyproject.toml)")
    done = _fresh_python("from aarlab.llm import get_model; print(get_model('scripted:demo').name, "
                         "get_model('scripted:demo-light').name)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["scripted:demo", "scripted:demo-light"]


def test_models_declare_capabilities_and_a_script_can_neither_advise_nor_skip_its_steps():
    from aarlab.llm import ModelCapabilities, capabilities_of

    scripted = get_model("scripted", script=["a"])
    assert capabilities_of(scripted) == ModelCapabilities(answers_prompts=False, resumes_by_step=True)

    class PlainModel:  # a model that declares nothing is a plain chat model
        name = "plain:model"

    assert capabilities_of(PlainModel()) == ModelCapabilities(answers_prompts=True, resumes_by_step=False)


def test_scripted_usage_emulates_a_prefix_cache():
    model = get_model("scripted", script=["a", "b"])
    conversation = [Message(role="system", content="system " * 400), Message(role="user", content="go")]
    first = model.generate(conversation, [])
    second = model.generate(conversation + [first.message, Message(role="user", content="more")], [])
    assert first.usage.cache_read_tokens == 0 and first.usage.cache_write_tokens > 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    third = get_model("scripted", script=["a"]).generate(conversation, [], GenerateConfig(cache=False))
    assert third.usage.cache_read_tokens == 0 and third.usage.input_tokens > 0


def test_seek_resumes_a_script_at_a_step():
    model = get_model("scripted", script=["s0", "s1", "s2"])
    model.seek(2)
    assert model.generate(user(), []).message.content == "s2"


def test_prices_come_from_the_table_with_overrides(tmp_path, monkeypatch):
    assert find_price("anthropic:claude-sonnet-4-5-20250929") == find_price("anthropic:claude-sonnet-4-5")
    override = tmp_path / "prices.yaml"
    override.write_text("openai:my-local: {input: 0.5, output: 1.0}\n")
    monkeypatch.setenv("AARLAB_PRICES", str(override))
    table = price_table(prices={"anthropic:claude-sonnet-4-5": {"input": 1, "output": 2}})
    assert table["openai:my-local"].input == 0.5
    assert table["anthropic:claude-sonnet-4-5"] == Price(input=1, output=2)
    model = get_model("scripted", script=["x"], usage={"input_tokens": 1_000_000, "output_tokens": 0},
                      prices={"input": 2.0, "output": 8.0})
    assert model.generate(user(), []).cost_usd == pytest.approx(2.0)
    with pytest.raises(UserError, match="price for"):
        price_table(prices={"x:y": {"input": "cheap"}})


def test_unknown_providers_and_bad_specs_are_user_errors():
    assert {"anthropic", "openai", "scripted"} <= set(known_providers())
    with pytest.raises(UserError, match="unknown model provider"):
        get_model("nosuch:model")
    with pytest.raises(UserError):
        get_model("")
