"""The anthropic provider, driven through the real ``anthropic`` SDK against a local Messages-API server."""

from __future__ import annotations

import pytest

from aarlab.errors import UserError
from aarlab.llm import GenerateConfig, Message, ModelError, ToolSpec, get_model
from aarlab.llm.testing import FakeAnthropicServer

BASH = ToolSpec(name="bash", description="Run a command.",
                parameters={"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]})
SYSTEM = "You are a careful researcher. " * 200  # large enough that caching matters


def model_for(server, **kw):
    return get_model("anthropic:claude-sonnet-4-5", base_url=server.url, api_key="test-key",
                     retry_base_delay=0.001, retry_max_delay=0.01, **kw)


def test_tool_use_blocks_become_tool_calls_and_results_go_back_as_tool_result_blocks():
    replies = iter([{"text": "Listing.", "tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}]},
                    {"text": "Done."}])
    with FakeAnthropicServer(reply=lambda request: next(replies)) as server:
        model = model_for(server)
        messages = [Message(role="system", content="sys"), Message(role="user", content="go")]
        first = model.generate(messages, [BASH])
        assert first.message.content == "Listing."
        [call] = first.message.tool_calls
        assert (call.name, call.arguments) == ("bash", {"command": "ls"})
        assert first.stop_reason == "tool_use"
        messages += [first.message, Message(role="tool", tool_call_id=call.id, content="boom", is_error=True)]
        second = model.generate(messages, [BASH])
        assert second.message.content == "Done." and second.stop_reason == "end_turn"
        sent = server.requests[1]
        assert sent["system"][0]["text"] == "sys"
        assert sent["tools"][0]["name"] == "bash" and sent["tools"][0]["input_schema"] == BASH.parameters
        assistant, user = sent["messages"][1], sent["messages"][2]
        assert assistant["content"][1] == {"type": "tool_use", "id": call.id, "name": "bash", "input": {"command": "ls"}}
        result = user["content"][0]
        assert (result["type"], result["tool_use_id"], result["content"], result["is_error"]) == (
            "tool_result", call.id, "boom", True)


def test_usage_cost_and_latency_are_reported_on_every_call():
    with FakeAnthropicServer(reply=lambda request: {"text": "hi"}) as server:
        model = model_for(server)
        out = model.generate([Message(role="system", content=SYSTEM), Message(role="user", content="go")], [BASH])
    assert out.usage.cache_write_tokens > 1000 and out.usage.cache_read_tokens == 0
    assert out.usage.output_tokens > 0
    # Sonnet: $3.75/Mtok cache write, $15/Mtok output.
    expected = (out.usage.cache_write_tokens * 3.75 + out.usage.input_tokens * 3 + out.usage.output_tokens * 15) / 1e6
    assert out.cost_usd == pytest.approx(expected)
    assert out.latency_s > 0 and out.model == "anthropic:claude-sonnet-4-5"


def test_breakpoints_sit_on_tools_system_and_the_conversation_prefix():
    with FakeAnthropicServer(reply=lambda request: {"text": "ok"}) as server:
        model = model_for(server)
        messages = [Message(role="system", content="sys"), Message(role="user", content="a"),
                    Message(role="assistant", content="b"), Message(role="user", content="c")]
        params = model.request(messages, [BASH, BASH.model_copy(update={"name": "python"})], GenerateConfig())
        assert "cache_control" not in params["tools"][0] and params["tools"][1]["cache_control"] == {"type": "ephemeral"}
        assert params["system"][-1]["cache_control"] == {"type": "ephemeral"}
        wire = params["messages"]
        assert wire[-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}  # writes this request's prefix
        assert wire[0]["content"][-1]["cache_control"] == {"type": "ephemeral"}  # where the previous one wrote
        marks = sum("cache_control" in b for m in wire for b in m["content"]) + 2
        assert marks <= 4
        plain = model.request(messages, [BASH], GenerateConfig(cache=False, tool_choice="required"))
        assert "cache_control" not in str(plain)
        assert plain["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize("statuses", [(429,), (529,), (500,), (429, 529, 500)])
def test_rate_limits_overload_and_server_errors_are_retried_until_success(statuses):
    with FakeAnthropicServer(reply=lambda request: {"text": "finally"}) as server:
        server.fail_next(*statuses, retry_after=0)
        out = model_for(server).generate([Message(role="user", content="go")], [])
        assert out.message.content == "finally"
        assert len(server.requests) == len(statuses) + 1


def test_retries_give_out_with_a_model_error_and_bad_requests_are_not_retried():
    with FakeAnthropicServer() as server:
        server.fail_next(529, 529, 529)
        with pytest.raises(ModelError, match="after 2 retries") as info:
            model_for(server, max_retries=2).generate([Message(role="user", content="go")], [])
        assert info.value.status == 529 and info.value.retryable
        assert len(server.requests) == 3
        server.requests.clear()
        server.fail_next(400, message="messages: bad shape")
        with pytest.raises(ModelError, match="bad shape"):
            model_for(server).generate([Message(role="user", content="go")], [])
        assert len(server.requests) == 1
        server.fail_next(401)
        with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
            model_for(server).generate([Message(role="user", content="go")], [])


def test_extended_thinking_is_requested_and_its_blocks_are_sent_back_verbatim():
    replies = iter([{"thinking": "Let me think.", "tool_calls": [{"name": "bash", "arguments": {"command": "pwd"}}]},
                    {"text": "ok"}])
    with FakeAnthropicServer(reply=lambda request: next(replies)) as server:
        model = model_for(server)
        config = GenerateConfig(max_tokens=1000, thinking_budget=2000, temperature=0.5)
        first = model.generate([Message(role="user", content="go")], [BASH], config)
        assert first.message.thinking == "Let me think."
        sent = server.requests[0]
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2000}
        assert sent["max_tokens"] > 2000 and "temperature" not in sent
        call = first.message.tool_calls[0]
        model.generate([Message(role="user", content="go"), first.message,
                        Message(role="tool", tool_call_id=call.id, content="/workspace")], [BASH], config)
        block = server.requests[1]["messages"][1]["content"][0]
        assert block["type"] == "thinking" and block["thinking"] == "Let me think." and block["signature"]


def test_cache_hit_accounting_over_a_50_turn_conversation():
    """Billed input of a 50-turn tool-use conversation with prompt caching vs without."""
    def run(cache: bool):
        step = iter(range(10_000))
        with FakeAnthropicServer(reply=lambda request: {
                "text": f"Step {next(step)}: running the next experiment.",
                "tool_calls": [{"name": "bash", "arguments": {"command": "python train.py --seed 1"}}]}) as server:
            model = model_for(server)
            messages = [Message(role="system", content=SYSTEM), Message(role="user", content="Begin.")]
            outputs = []
            for turn in range(50):
                out = model.generate(messages, [BASH], GenerateConfig(cache=cache))
                outputs.append(out)
                call = out.message.tool_calls[0]
                log = f"epoch {turn} loss 0.{turn:03d} accuracy 0.7{turn % 10}\n" * 8
                messages += [out.message, Message(role="tool", tool_call_id=call.id, content=log)]
        return outputs

    cached, uncached = run(True), run(False)
    prompt_tokens = [o.usage.total_input_tokens for o in cached]
    assert prompt_tokens == [o.usage.total_input_tokens for o in uncached]  # the same prompts either way
    total_read = sum(o.usage.cache_read_tokens for o in cached)
    assert all(o.usage.cache_read_tokens == 0 and o.usage.cache_write_tokens == 0 for o in uncached)
    assert total_read / sum(prompt_tokens) > 0.9  # nearly every prompt token after the first turn is a hit
    # Each turn reads everything the previous turn wrote.
    for before, after in zip(cached, cached[1:], strict=False):
        assert after.usage.cache_read_tokens == before.usage.total_input_tokens
    cost_cached, cost_uncached = sum(o.cost_usd for o in cached), sum(o.cost_usd for o in uncached)
    assert cost_cached < 0.25 * cost_uncached


def test_both_providers_share_one_base_for_credentials_retries_and_errors(monkeypatch):
    from aarlab.llm import ModelAPI
    from aarlab.llm._anthropic import AnthropicModel
    from aarlab.llm._openai import OpenAIModel

    for provider in (AnthropicModel, OpenAIModel):
        assert issubclass(provider, ModelAPI)
        assert not {"generate", "_classify", "_translate"} & set(vars(provider))
    # Where the two copies disagreed, the base's wording holds for both: a missing key names the base_url way
    # out (a gateway or a local server), and a refused key or an unknown model reads the same.
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY.*base_url"):
        get_model("anthropic:claude-sonnet-4-5")
    with FakeAnthropicServer() as server:
        server.fail_next(404)
        with pytest.raises(UserError, match="model or endpoint not found"):
            model_for(server).generate([Message(role="user", content="go")], [])
