"""Local HTTP servers that speak the Anthropic Messages and OpenAI chat-completions wire protocols.

For tests and benchmarks that drive the real ``anthropic`` and ``openai`` SDKs without a network::

    with FakeAnthropicServer(reply=lambda request: {"text": "hi"}) as server:
        model = get_model("anthropic:claude-sonnet-4-5", base_url=server.url, api_key="test")
        server.fail_next(529, 500)          # the next two requests fail, then replies resume

``reply(request) -> dict`` gets the parsed JSON request body and returns a neutral reply: ``text``,
``tool_calls`` (a list of ``{"name", "arguments"}``), ``thinking`` (Anthropic), ``stop_reason``. Usage is
computed from the request the way the provider bills it (4 characters a token):

- Anthropic: the prompt is the sequence tools → system blocks → message blocks; each ``cache_control``
  breakpoint writes the prefix up to it, and a request reads the longest prefix that was written before and
  ends at most 20 blocks before one of its breakpoints; the rest up to the last breakpoint is a cache write,
  what follows it is uncached input.
- OpenAI: automatic prefix caching over whole messages (the longest prefix of messages seen before is read
  from the cache).

``server.requests`` holds every request body received (failed ones included), in order.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aarlab.llm._tokens import estimate_tokens

LOOKBACK_BLOCKS = 20
Reply = Callable[[dict], dict]

_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                     413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


class _FakeServer:
    path = ""

    def __init__(self, reply: Reply | None = None, model_name: str = "fake-model"):
        self.reply = reply or (lambda request: {"text": "ok"})
        self.model_name = model_name
        self.requests: list[dict] = []
        self._failures: deque[tuple[int, dict[str, str], str | None]] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------------------------
    def fail_next(self, *statuses: int, retry_after: float | None = None, message: str | None = None) -> None:
        """Answer the next requests with these HTTP statuses (in order) before replying normally again."""
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        for status in statuses:
            self._failures.append((status, headers, message))

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.base_path}"

    base_path = ""

    def start(self) -> _FakeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, headers, payload = server._handle(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handle(self, path: str, body: dict) -> tuple[int, dict[str, str], dict]:
        with self._lock:
            self.requests.append(body)
            if not path.rstrip("/").endswith(self.path):
                return 404, {}, self.error_body(404, f"no route {path}")
            if self._failures:
                status, headers, message = self._failures.popleft()
                return status, headers, self.error_body(status, message or f"injected failure {status}")
            return 200, {}, self.respond(body, self.reply(body))

    def error_body(self, status: int, message: str) -> dict:
        raise NotImplementedError

    def respond(self, request: dict, reply: dict) -> dict:
        raise NotImplementedError


def _hash_chain(units: list[Any]) -> list[str]:
    digest, out = hashlib.sha256(), []
    for unit in units:
        digest.update(json.dumps(unit, sort_keys=True).encode())
        out.append(digest.copy().hexdigest())
    return out


class FakeAnthropicServer(_FakeServer):
    """``POST /v1/messages`` with tool_use, thinking and prompt-cache accounting (see the module docstring)."""

    path = "/v1/messages"

    def __init__(self, reply: Reply | None = None, model_name: str = "claude-fake"):
        super().__init__(reply, model_name)
        self._cached: set[str] = set()

    def error_body(self, status: int, message: str) -> dict:
        return {"type": "error", "error": {"type": _ANTHROPIC_ERRORS.get(status, "api_error"), "message": message}}

    def usage(self, request: dict) -> dict[str, int]:
        """Bill the request's prompt: cache read / cache write / uncached input, from its breakpoints."""
        blocks: list[dict] = list(request.get("tools") or [])
        system = request.get("system") or []
        blocks += [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
        for message in request.get("messages", []):
            content = message["content"]
            content = [{"type": "text", "text": content}] if isinstance(content, str) else content
            blocks += [{"role": message["role"], **b} for b in content]
        plain = [{k: v for k, v in b.items() if k != "cache_control"} for b in blocks]
        sizes = [estimate_tokens(b) for b in plain]
        hashes = _hash_chain(plain)
        breakpoints = [i for i, b in enumerate(blocks) if "cache_control" in b]
        hit = 0  # number of leading blocks read from the cache
        for bp in breakpoints:
            for end in range(bp, max(-1, bp - LOOKBACK_BLOCKS - 1), -1):
                if hashes[end] in self._cached:
                    hit = max(hit, end + 1)
                    break
        last = breakpoints[-1] + 1 if breakpoints else 0
        for bp in breakpoints:
            self._cached.add(hashes[bp])
        read = sum(sizes[:hit])
        write = sum(sizes[hit:last]) if last > hit else 0
        uncached = sum(sizes[max(hit, last):])
        return {"input_tokens": uncached, "cache_creation_input_tokens": write, "cache_read_input_tokens": read}

    def respond(self, request: dict, reply: dict) -> dict:
        content: list[dict] = []
        if reply.get("thinking"):
            content.append({"type": "thinking", "thinking": reply["thinking"],
                            "signature": hashlib.sha256(reply["thinking"].encode()).hexdigest()})
        if reply.get("text"):
            content.append({"type": "text", "text": reply["text"]})
        for call in reply.get("tool_calls", []):
            content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:16]}",
                            "name": call["name"], "input": call.get("arguments", {})})
        if not content:
            content.append({"type": "text", "text": ""})
        output = max(1, sum(estimate_tokens(b) for b in content))
        return {
            "id": f"msg_{uuid.uuid4().hex[:16]}", "type": "message", "role": "assistant",
            "model": request.get("model", self.model_name), "content": content,
            "stop_reason": reply.get("stop_reason") or ("tool_use" if reply.get("tool_calls") else "end_turn"),
            "stop_sequence": None, "usage": {**self.usage(request), "output_tokens": output},
        }


class FakeOpenAIServer(_FakeServer):
    """``POST /v1/chat/completions`` with tool calls and automatic prefix caching (see the module docstring)."""

    path = "/chat/completions"
    base_path = "/v1"

    def __init__(self, reply: Reply | None = None, model_name: str = "gpt-fake"):
        super().__init__(reply, model_name)
        self._cached: set[str] = set()

    def error_body(self, status: int, message: str) -> dict:
        return {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                          "code": None}}

    def respond(self, request: dict, reply: dict) -> dict:
        units = [{"tools": request.get("tools") or []}] + list(request.get("messages", []))
        sizes = [estimate_tokens(u) for u in units]
        hashes = _hash_chain(units)
        hit = max((i + 1 for i, h in enumerate(hashes) if h in self._cached), default=0)
        self._cached.update(hashes)
        calls = [{"id": c.get("id") or f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                  "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c.get("arguments"), str)
                               else json.dumps(c.get("arguments", {}))}}
                 for c in reply.get("tool_calls", [])]
        message: dict[str, Any] = {"role": "assistant", "content": reply.get("text")}
        if calls:
            message["tool_calls"] = calls
        prompt = sum(sizes)
        completion = max(1, estimate_tokens(reply.get("text")) + sum(estimate_tokens(c) for c in calls))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model", self.model_name),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": reply.get("stop_reason") or ("tool_calls" if calls else "stop")}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": sum(sizes[:hit])}},
        }


__all__ = ["FakeAnthropicServer", "FakeOpenAIServer"]
