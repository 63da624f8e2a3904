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


def test_unknown_names_import_aarlab_team_which_registers_demo():
    # In a fresh interpreter, so that nothing has imported aarlab.team yet.
    code = ("import sys; from aarlab.llm import get_model; assert 'aarlab.team' not in sys.modules; "
            "model = get_model('scripted:demo'); print('aarlab.team' in sys.modules, model.name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if "no script of that name" in done.stderr:
        pytest.skip("aarlab.team does not register the demo script (yet)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True ")


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
