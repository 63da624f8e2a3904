"""The openai provider, driven through the real ``openai`` SDK against a local chat-completions server."""

from __future__ import annotations

import json

import pytest

from aarlab.errors import UserError
from aarlab.llm import ContextWindowExceeded, GenerateConfig, Message, ModelError, ToolSpec, get_model
from aarlab.llm.testing import FakeOpenAIServer

READ = ToolSpec(name="read_file", description="Read a file.",
                parameters={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]})


def model_for(server, spec="openai:gpt-4o", **kw):
    return get_model(spec, base_url=server.url, retry_base_delay=0.001, retry_max_delay=0.01, **kw)


def test_tool_calls_round_trip_through_chat_completions():
    replies = iter([{"text": None, "tool_calls": [{"name": "read_file", "arguments": {"path": "a.txt"}}]},
                    {"text": "The file says hello."}])
    with FakeOpenAIServer(reply=lambda request: next(replies)) as server:
        model = model_for(server)
        messages = [Message(role="system", content="sys"), Message(role="user", content="read a.txt")]
        first = model.generate(messages, [READ], GenerateConfig(max_tokens=123, temperature=0.2))
        [call] = first.message.tool_calls
        assert (call.name, call.arguments) == ("read_file", {"path": "a.txt"})
        assert first.stop_reason == "tool_calls"
        messages += [first.message, Message(role="tool", tool_call_id=call.id, content="no such file", is_error=True)]
        second = model.generate(messages, [READ])
        assert second.message.content == "The file says hello."
    request = server.requests[1]
    assert request["tools"][0] == {"type": "function", "function": {
        "name": "read_file", "description": "Read a file.", "parameters": READ.parameters}}
    assert server.requests[0]["max_tokens"] == 123 and server.requests[0]["temperature"] == 0.2
    assistant, result = request["messages"][2], request["messages"][3]
    assert assistant["tool_calls"][0]["id"] == call.id
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"path": "a.txt"}
    assert result == {"role": "tool", "tool_call_id": call.id, "content": "ERROR: no such file"}


def test_cached_prompt_tokens_are_reported_as_cache_reads_and_priced_as_such():
    with FakeOpenAIServer(reply=lambda request: {"text": "ok"}) as server:
        model = model_for(server)
        messages = [Message(role="system", content="long system prompt " * 300), Message(role="user", content="a")]
        first = model.generate(messages, [READ])
        messages += [first.message, Message(role="user", content="b")]
        second = model.generate(messages, [READ])
    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.total_input_tokens
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per Mtok
    u = second.usage
    assert second.cost_usd == pytest.approx((u.input_tokens * 2.5 + u.cache_read_tokens * 1.25 + u.output_tokens * 10) / 1e6)


@pytest.mark.parametrize("statuses", [(429,), (500,), (503, 429, 500)])
def test_transient_failures_are_retried(statuses):
    with FakeOpenAIServer(reply=lambda request: {"text": "ok"}) as server:
        server.fail_next(*statuses, retry_after=0)
        assert model_for(server).generate([Message(role="user", content="x")], []).message.content == "ok"
        assert len(server.requests) == len(statuses) + 1


def test_errors_are_translated():
    with FakeOpenAIServer() as server:
        server.fail_next(400, message="This model's maximum context length is 8192 tokens; your messages exceed it")
        with pytest.raises(ContextWindowExceeded):
            model_for(server).generate([Message(role="user", content="x")], [])
        server.fail_next(401)
        with pytest.raises(UserError, match="OPENAI_API_KEY"):
            model_for(server).generate([Message(role="user", content="x")], [])
        server.fail_next(500, 500)
        with pytest.raises(ModelError, match="after 1 retries"):
            model_for(server, max_retries=1).generate([Message(role="user", content="x")], [])


def test_malformed_tool_arguments_reach_the_agent_as_invalid_json():
    with FakeOpenAIServer(reply=lambda r: {"tool_calls": [{"name": "read_file", "arguments": "{path: oops"}]}) as server:
        out = model_for(server).generate([Message(role="user", content="x")], [READ])
    assert out.message.tool_calls[0].arguments == {"__invalid_json__": "{path: oops"}


def test_reasoning_models_get_reasoning_effort_and_max_completion_tokens(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = get_model("openai:o3")
    params = model.request([Message(role="user", content="x")], [], GenerateConfig(reasoning_effort="high"))
    assert params["reasoning_effort"] == "high" and params["max_completion_tokens"] == 4096
    local = get_model("openai:llama3:8b", base_url="http://127.0.0.1:1/v1")
    params = local.request([Message(role="user", content="x")], [], GenerateConfig(reasoning_effort="high"))
    assert "reasoning_effort" not in params and params["max_tokens"] == 4096
    assert local.name == "openai:llama3:8b"


def test_a_missing_key_without_a_base_url_is_a_user_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        get_model("openai:gpt-4o")
