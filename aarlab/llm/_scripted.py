"""A deterministic model that plays back a script: for tests, offline demos and benchmarks of the harness.

Three ways to say what it answers:

- a list (or any iterable) of outputs: ``get_model("scripted", script=["hi", {"tool": "bash", ...}])``;
- a YAML file of the same steps: ``get_model("scripted:path/to/script.yaml")``;
- a function of the conversation: ``get_model("scripted", generator=lambda messages, tools: ...)``.

A step is any of

- ``"text"``: a final answer (stop_reason ``end_turn``);
- ``{"tool": "bash", "arguments": {"command": "ls"}}``: one tool call (``args`` is an alias);
- ``{"content": "...", "tool_calls": [{"name": "bash", "arguments": {...}}, {"read_file": {"path": "x"}}],
  "thinking": "..."}``: text and/or several tool calls (a call may be written ``{tool_name: arguments}``);
  optional ``stop_reason`` and ``usage`` override what is reported;
- a ``Message``, ``ToolCall`` or ``ModelOutput``.

A generator returns a step, or ``None`` when it has nothing more to say. When the script runs out the
model answers ``final_message`` (stop_reason ``end_turn``), or raises ``ScriptExhausted`` with
``on_exhausted="error"``.

Where it is in the script: step *k* answers the *k*-th call, and a conversation that already holds *k*
assistant messages is answered from step *k* at least, so that a run resumed in a new process (from its
transcript) goes on where it stopped instead of replaying tool calls.

Usage: by default tokens are estimated from the text (4 characters a token) and prompt caching is
emulated (a prompt prefix sent before is a cache read, the new tail a cache write, as with Anthropic's
moving breakpoint); ``usage={"input_tokens": 1000, "output_tokens": 50}`` reports fixed numbers instead.
``prices={"input": 3, "output": 15, ...}`` ($/Mtok) gives a cost; ``delay_s`` simulates latency.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from aarlab.errors import UserError
from aarlab.llm._base import (
    GenerateConfig,
    Message,
    ModelCapabilities,
    ModelOutput,
    ToolCall,
    ToolSpec,
    Usage,
    provider,
)
from aarlab.llm._errors import ScriptExhausted
from aarlab.llm._pricing import Price, cost_of, resolve_price
from aarlab.llm._tokens import PrefixCache, estimate_tokens

BUILTIN_SCRIPTS = Path(__file__).with_name("scripts")
_STEP_KEYS = {"content", "text", "tool_calls", "tools", "tool", "arguments", "args", "thinking", "stop_reason", "usage"}


def _tool_call(raw: Any, step: int, index: int) -> ToolCall:
    call_id = f"call_s{step}_{index}"
    if isinstance(raw, ToolCall):
        return raw
    if isinstance(raw, dict):
        if "name" in raw:
            arguments = raw.get("arguments", raw.get("args", {})) or {}
            if not isinstance(arguments, dict):
                raise UserError(f"script step {step}: tool call arguments must be a mapping, got {arguments!r}")
            return ToolCall(id=str(raw.get("id") or call_id), name=str(raw["name"]), arguments=arguments)
        if len(raw) == 1:
            ((name, arguments),) = raw.items()
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                raise UserError(f"script step {step}: arguments of {name!r} must be a mapping, got {arguments!r}")
            return ToolCall(id=call_id, name=str(name), arguments=arguments)
    raise UserError(f"script step {step}: cannot read tool call {raw!r} (use {{name: ..., arguments: {{...}}}})")


def parse_step(raw: Any, step: int) -> tuple[Message, str | None, Usage | None]:
    """One script step as (assistant message, stop_reason override, usage override)."""
    if isinstance(raw, ModelOutput):
        return raw.message, raw.stop_reason, raw.usage
    if isinstance(raw, Message):
        if raw.role != "assistant":
            raise UserError(f"script step {step}: a scripted message must have role 'assistant', not {raw.role!r}")
        return raw, None, None
    if isinstance(raw, ToolCall):
        return Message(role="assistant", tool_calls=[raw]), None, None
    if isinstance(raw, str):
        return Message(role="assistant", content=raw), None, None
    if isinstance(raw, dict):
        unknown = set(raw) - _STEP_KEYS
        if unknown:
            raise UserError(
                f"script step {step}: unknown key(s) {sorted(unknown)}; a step has {sorted(_STEP_KEYS)}"
            )
        calls_raw = list(raw.get("tool_calls") or raw.get("tools") or [])
        if "tool" in raw:
            calls_raw.insert(0, {"name": raw["tool"], "arguments": raw.get("arguments", raw.get("args", {}))})
        calls = [_tool_call(c, step, i) for i, c in enumerate(calls_raw)]
        content = raw.get("content", raw.get("text", "")) or ""
        usage = raw.get("usage")
        message = Message(role="assistant", content=str(content), tool_calls=calls, thinking=raw.get("thinking"))
        return message, raw.get("stop_reason"), Usage.model_validate(usage) if usage is not None else None
    raise UserError(f"script step {step}: cannot read {raw!r} (a string, a mapping, a Message or a ToolCall)")


def load_script(path: str | Path) -> dict[str, Any]:
    """Read a YAML script: a list of steps, or ``{steps: [...], on_exhausted, final_message, usage, prices}``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        builtin = BUILTIN_SCRIPTS / f"{path}.yaml"
        if not path.suffix and builtin.is_file():
            path = builtin
        else:
            raise UserError(f"scripted model: script file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    if isinstance(raw, list):
        raw = {"steps": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("steps"), list):
        raise UserError(f"{path}: a script is a list of steps, or a mapping with a 'steps' list")
    allowed = {"steps", "on_exhausted", "final_message", "usage", "prices", "delay_s"}
    if unknown := set(raw) - allowed:
        raise UserError(f"{path}: unknown key(s) {sorted(unknown)}; a script may have {sorted(allowed)}")
    # Parse every step now so that a typo fails when the model is built, not in the middle of a run.
    for i, step in enumerate(raw["steps"]):
        parse_step(step, i)
    return raw


class ScriptedModel:
    """A ``Model`` that answers from a script or a generator (see the module docstring)."""

    # A script plays back its steps whatever it is asked, and goes on by step number when a run resumes.
    capabilities = ModelCapabilities(answers_prompts=False, resumes_by_step=True)

    def __init__(
        self,
        script: Iterable[Any] | None = None,
        *,
        generator: Callable[..., Any] | None = None,
        name: str = "scripted",
        on_exhausted: str = "finish",
        final_message: str = "I have finished the scripted steps.",
        usage: Usage | dict[str, int] | None = None,
        prices: Price | dict[str, Any] | None = None,
        delay_s: float = 0.0,
    ):
        if script is not None and generator is not None:
            raise UserError("scripted model: give a script or a generator, not both")
        if on_exhausted not in ("finish", "error"):
            raise UserError(f"scripted model: on_exhausted must be 'finish' or 'error', not {on_exhausted!r}")
        self.name = name
        self.on_exhausted = on_exhausted
        self.final_message = final_message
        self.fixed_usage = Usage.model_validate(usage) if isinstance(usage, dict) else usage
        self.price = resolve_price(name, prices) if prices is not None else None
        self.delay_s = float(delay_s)
        self._generator = generator
        self._generator_takes_tools = generator is not None and _takes_two_args(generator)
        self._steps: list[Any] | None = None
        self._iterator: Iterator[Any] | None = None
        if isinstance(script, list | tuple):
            self._steps = list(script)
            for i, step in enumerate(self._steps):
                parse_step(step, i)
        elif script is not None:
            self._iterator = iter(script)
        elif generator is None:
            self._steps = []
        self.calls = 0
        self.last_messages: list[Message] = []
        self.last_tools: list[ToolSpec] = []
        self._cache = PrefixCache()
        self._lock = threading.Lock()

    def seek(self, step: int) -> None:
        """Continue the script at step ``step`` (0-based): the agent calls it when it resumes a run that had
        made ``step`` model calls, since a compacted conversation no longer shows how many there were."""
        with self._lock:
            self.calls = max(0, int(step))

    @property
    def steps_left(self) -> int | None:
        """How many scripted steps remain (None for a generator or an iterator)."""
        return None if self._steps is None else max(0, len(self._steps) - self.calls)

    def _next_step(self, messages: list[Message], tools: list[ToolSpec]) -> Any:
        if self._generator is not None:
            args = (messages, tools) if self._generator_takes_tools else (messages,)
            return self._generator(*args)
        if self._iterator is not None:
            return next(self._iterator, None)
        # Resume: a conversation with k assistant turns continues at step k even in a fresh process.
        done = sum(1 for m in messages if m.role == "assistant")
        self.calls = max(self.calls, done)
        return self._steps[self.calls] if self.calls < len(self._steps) else None

    def generate(
        self, messages: list[Message], tools: list[ToolSpec], config: GenerateConfig | None = None
    ) -> ModelOutput:
        config = config or GenerateConfig()
        start = time.perf_counter()
        with self._lock:
            raw = self._next_step(messages, tools)
            step = self.calls
            self.calls += 1
            self.last_messages, self.last_tools = list(messages), list(tools)
            if raw is None:
                if self.on_exhausted == "error":
                    raise ScriptExhausted(f"{self.name}: the script has no step {step} (it has {step} steps)")
                raw = self.final_message
            message, stop_reason, usage = parse_step(raw, step)
            usage = usage or self.fixed_usage or self._estimate_usage(messages, tools, message, config)
        if self.delay_s:
            time.sleep(self.delay_s)
        return ModelOutput(
            message=message,
            usage=usage,
            cost_usd=cost_of(usage, self.price),
            latency_s=time.perf_counter() - start,
            stop_reason=stop_reason or ("tool_use" if message.tool_calls else "end_turn"),
            model=self.name,
        )

    def _estimate_usage(
        self, messages: list[Message], tools: list[ToolSpec], reply: Message, config: GenerateConfig
    ) -> Usage:
        units: list[Any] = [[t.model_dump() for t in tools]] + [m.model_dump(exclude_defaults=True) for m in messages]
        sizes = [estimate_tokens(u) for u in units]
        output = estimate_tokens(reply.content) + sum(estimate_tokens(c.model_dump()) for c in reply.tool_calls)
        output += estimate_tokens(reply.thinking)
        if not config.cache:
            return Usage(input_tokens=sum(sizes), output_tokens=max(1, output))
        hashes = self._cache.chain(units)
        hit = self._cache.longest_hit(hashes)
        self._cache.store(hashes, [len(units)])
        return Usage(
            cache_read_tokens=sum(sizes[:hit]), cache_write_tokens=sum(sizes[hit:]), output_tokens=max(1, output)
        )


def _takes_two_args(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


_SCRIPTS: dict[str, Callable[..., Any]] = {}
# Packages declare their named scripts under this entry-point group (``name = "module:factory"``), so that
# ``scripted:<name>`` works in a fresh process without this module knowing who owns the script.
SCRIPT_ENTRY_POINTS = "aarlab.scripts"


def register_script(name: str, factory: Callable[..., Any]) -> None:
    """Make ``get_model(f"scripted:{name}", **options)`` call ``factory(**options)``.

    The factory returns a ``Model`` (typically a ``ScriptedModel`` with a generator) or a list of steps.
    A package can instead declare it as an entry point of the ``aarlab.scripts`` group, found on first use;
    ``aarlab.team`` declares ``demo`` and ``demo-light``, the offline demo researcher, that way (and registers
    them when imported).
    """
    if not name or "/" in name or name.endswith((".yaml", ".yml")):
        raise ValueError(f"a script name is a plain word, not a path: {name!r}")
    _SCRIPTS[name] = factory


def _script_entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=SCRIPT_ENTRY_POINTS)}


def registered_scripts() -> list[str]:
    """Names of the scripts ``scripted:<name>`` finds: registered ones and declared entry points."""
    return sorted(set(_SCRIPTS) | set(_script_entry_points()))


def _named_script(name: str) -> Callable[..., Any] | None:
    if name not in _SCRIPTS and (declared := _script_entry_points().get(name)) is not None:
        # Loading runs the owner's import; an error there is a bug in that package, so it propagates.
        register_script(name, declared.load())
    return _SCRIPTS.get(name)


@provider("scripted")
def make_scripted(model: str = "", **options: Any) -> Any:
    """``scripted:<name>`` (a registered script), ``scripted:path/to/script.yaml`` (or a built-in script
    name), or ``scripted`` with ``script=[...]`` or ``generator=fn``."""
    if model and not Path(model).is_file() and (factory := _named_script(model)) is not None:
        built = factory(**options)
        if isinstance(built, list | tuple):
            return ScriptedModel(built, name=f"scripted:{model}")
        return built
    allowed = {"script", "generator", "on_exhausted", "final_message", "usage", "prices", "delay_s", "name"}
    if unknown := set(options) - allowed:
        raise UserError(f"scripted model: unknown option(s) {sorted(unknown)}; known: {sorted(allowed)}")
    name = options.pop("name", None)
    if model:
        if "script" in options or "generator" in options:
            raise UserError(f"scripted:{model}: give the script as a file or as script=..., not both")
        if not Path(model).is_file() and not (BUILTIN_SCRIPTS / f"{model}.yaml").is_file() and not Path(model).suffix:
            known = ", ".join(registered_scripts()) or "none"
            raise UserError(f"scripted:{model}: no script of that name (registered: {known}) and no such file")
        file_options = load_script(model)
        steps = file_options.pop("steps")
        options = {**file_options, **options, "script": steps}
        name = name or f"scripted:{Path(model).stem}"
    elif "script" not in options and "generator" not in options:
        raise UserError("scripted model: give scripted:<name>, scripted:path/to/script.yaml, script=[...] or "
                        "generator=fn")
    return ScriptedModel(name=name or "scripted", **options)
