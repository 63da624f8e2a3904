"""Tools are plain functions; ``@tool`` registers one and builds the JSON schema the model sees.

A tool's first parameter is the ``ToolContext`` (the sandbox, the lab client, the agent's state); the others
are the model's arguments. The schema comes from the type hints and the docstring::

    @tool
    def read_file(ctx: ToolContext, path: str, offset: int = 1, limit: int = 2000) -> str:
        \"\"\"Read a text file.

        Args:
            path: File path, relative to the workspace.
            offset: First line to show (1-based).
        \"\"\"

A tool returns text for the model. To report a failure the model should see, raise ``ToolError`` (any
other exception is reported the same way, with its type); ``AgentStop`` and ``HarnessError`` propagate.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, get_origin

from aarlab.llm import ToolSpec

if TYPE_CHECKING:
    from aarlab.agent._budget import Budget
    from aarlab.agent._config import AgentConfig
    from aarlab.llm import Model, Usage
    from aarlab.sandbox import ExecResult
    from aarlab.server.schemas import Leaderboard, Post, SnapshotInfo, SubmissionResult, TaskSummary


class ToolError(Exception):
    """A failure to show the model as a tool error (bad path, unknown snapshot, server refusal)."""


class AgentSandbox(Protocol):
    """What the agent and its tools use of a sandbox; every ``aarlab.sandbox.Sandbox`` backend is one."""

    def exec(self, cmd: str | list[str], timeout: float | None = None, env: dict[str, str] | None = None,
             cwd: str | None = None) -> ExecResult: ...

    def read_file(self, path: str) -> bytes: ...

    def write_file(self, path: str, data: bytes | str) -> None: ...

    def list_files(self, path: str = ".") -> list[str]: ...


class AgentLabClient(Protocol):
    """What the agent and its tools use of the lab, with the agent's own token; ``aarlab.server.client.LabClient``
    is one."""

    def tasks(self) -> list[TaskSummary]: ...

    def submit(self, task: str, predictions: Sequence[int] | Sequence[Sequence[int]], snapshot_id: str | None = None,
               method: str | None = None) -> SubmissionResult: ...

    def leaderboard(self, task: str | None = None, sort: str = "final") -> Leaderboard: ...

    def post(self, kind: str, title: str, body: str, tags: Sequence[str] = (), snapshot_id: str | None = None,
             metrics: dict | None = None, entry_point: str | None = None, task: str | None = None,
             submission_id: int | None = None) -> Post: ...

    def reply(self, post_id: int, body: str) -> Post: ...

    def posts(self, since: float | None = None, kind: str | None = None, tag: str | None = None,
              author: str | None = None, limit: int = 50, offset: int = 0,
              since_id: int | None = None) -> list[Post]: ...

    def search(self, query: str, limit: int = 20) -> list[Post]: ...

    def publish_snapshot(self, tar_bytes: bytes, message: str, parent: str | None = None) -> SnapshotInfo: ...

    def fetch_snapshot(self, snapshot_id: str) -> bytes: ...


class ToolHost(Protocol):
    """What tools use of the running agent; ``aarlab.agent.Agent`` is one."""

    config: AgentConfig
    budget: Budget
    consult_model: Model | None
    on_publish: Callable[[str], None] | None

    def charge_tool(self, usage: Usage, cost_usd: float) -> None: ...

    def account_jobs(self) -> None:
        """Charge the background jobs' compute since the last call to the budget; raises when it is spent."""

    def read_notebook(self) -> str | None: ...


@dataclass
class LoopSignals:
    """What tools tell the loop, as typed fields: the loop reads them after each step and keeps them in the
    transcript's ``state`` (under these names), so a resumed run sees them again."""

    finished: str | None = None  # the ``finish`` tool's summary: the loop stops after this step
    submissions_left: tuple[int, int] | None = None  # (this run, this hour), from the lab's last reply


@dataclass
class ToolContext:
    """What tools may use: the running agent (its config, budget, notebook), its sandbox and lab client, the
    task, ``signals`` for the loop, and ``state``, the tools' own memory across steps and resumes (e.g. the
    forum cursor), saved in every turn record."""

    agent: ToolHost
    sandbox: AgentSandbox | None = None
    client: AgentLabClient | None = None
    task: str | None = None
    state: dict = field(default_factory=dict)
    signals: LoopSignals = field(default_factory=LoopSignals)


@dataclass
class Tool:
    """A registered tool: the function, what the model sees of it, and which capability it needs."""

    name: str
    fn: Callable[..., str]
    spec: ToolSpec
    needs: str | None = None  # "sandbox" | "jobs" | "client" | "consult" | None: the agent drops tools it cannot serve

    def __call__(self, ctx: ToolContext, arguments: dict[str, Any]) -> str:
        return self.fn(ctx, **check_arguments(self, arguments))


_TOOLS: dict[str, Tool] = {}


def tool(fn: Callable | None = None, *, name: str | None = None, needs: str | None = None):
    """Register ``fn`` as a tool (``@tool`` or ``@tool(name=..., needs="sandbox")``)."""

    def register(f: Callable) -> Callable:
        tool_name = name or f.__name__
        _TOOLS[tool_name] = Tool(tool_name, f, tool_spec(f, tool_name), needs)
        return f

    return register(fn) if fn is not None else register


def registered_tools() -> dict[str, Tool]:
    """All registered tools by name (importing ``aarlab.agent.tools`` registers the built-in ones)."""
    return dict(_TOOLS)


def get_tools(names: list[str] | None = None) -> list[Tool]:
    """The tools called ``names`` (all registered tools when None), in the given order."""
    if names is None:
        return list(_TOOLS.values())
    missing = [n for n in names if n not in _TOOLS]
    if missing:
        from aarlab.errors import UserError

        raise UserError(f"unknown tool(s) {missing}; known: {sorted(_TOOLS)}")
    return [_TOOLS[n] for n in names]


# -- schema from type hints and docstring ----------------------------------------------------------------

_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {argument: description})."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    section = None
    current = None
    arg_indent = None
    for line in lines:
        stripped = line.strip()
        header = stripped.rstrip(":").lower()
        if stripped.endswith(":") and header in ("args", "arguments", "parameters", "returns", "raises", "example",
                                                 "examples", "yields", "note", "notes"):
            section, current, arg_indent = header, None, None
            continue
        if section is None:
            description.append(line)
        elif section in ("args", "arguments", "parameters"):
            if not stripped:
                continue
            indent = len(line) - len(line.lstrip())
            match = _ARG_LINE.match(line)
            if match and (arg_indent is None or indent <= arg_indent):
                arg_indent = indent
                current = match.group(1).lstrip("*")
                args[current] = match.group(3).strip()
            elif current:
                args[current] = (args[current] + " " + stripped).strip()
    return "\n".join(description).strip(), args


def json_schema(annotation: Any) -> dict[str, Any]:
    """The JSON schema of a Python type hint (the subset tools use)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return json_schema(rest[0])
        return {"anyOf": [json_schema(a) for a in rest]}
    if origin is Literal:
        values = list(args)
        schema: dict[str, Any] = {"enum": values}
        if all(isinstance(v, str) for v in values):
            schema["type"] = "string"
        return schema
    if annotation is str:
        return {"type": "string"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation in (list, tuple) or origin in (list, tuple):
        schema = {"type": "array"}
        if args and args[0] is not Ellipsis:
            schema["items"] = json_schema(args[0])
        return schema
    if annotation is dict or origin is dict:
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = json_schema(args[1])
        return schema
    raise TypeError(f"no JSON schema for the type hint {annotation!r}")


def tool_spec(fn: Callable, name: str | None = None) -> ToolSpec:
    """Build the ``ToolSpec`` of a tool function from its signature and docstring."""
    description, arg_docs = parse_docstring(fn.__doc__)
    hints = typing.get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())[1:]  # the first is the ToolContext
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"tool {fn.__name__}: *args/**kwargs cannot be described to a model")
        schema = json_schema(hints.get(p.name, p.annotation))
        if p.name in arg_docs:
            schema["description"] = arg_docs[p.name]
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        elif p.default is not None:
            schema["default"] = p.default
        properties[p.name] = schema
    if undocumented := [p.name for p in params if p.name not in arg_docs]:
        raise TypeError(f"tool {fn.__name__}: document argument(s) {undocumented} in the docstring's Args: section")
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return ToolSpec(name=name or fn.__name__, description=description, parameters=parameters)


def check_arguments(t: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """Check the model's arguments against the schema, coercing what is safe ("5" for an integer)."""
    if not isinstance(arguments, dict):
        raise ToolError(f"{t.name}: arguments must be a JSON object, got {type(arguments).__name__}")
    if "__invalid_json__" in arguments:  # set by a provider when the model's arguments did not parse
        raise ToolError(f"{t.name}: the arguments are not valid JSON: {str(arguments['__invalid_json__'])[:300]}")
    props = t.spec.parameters["properties"]
    unknown = sorted(set(arguments) - set(props))
    if unknown:
        raise ToolError(f"{t.name}: unknown argument(s) {unknown}; it takes {sorted(props)}")
    missing = [n for n in t.spec.parameters["required"] if n not in arguments]
    if missing:
        raise ToolError(f"{t.name}: missing required argument(s) {missing}")
    out = {}
    for key, value in arguments.items():
        out[key] = _coerce(t.name, key, value, props[key])
    return out


def _coerce(tool_name: str, key: str, value: Any, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if value is None:
        return None
    bad = ToolError(f"{tool_name}: argument {key!r} must be {kind or 'valid'}, got {value!r:.80}")
    if "enum" in schema and value not in schema["enum"]:
        raise ToolError(f"{tool_name}: argument {key!r} must be one of {schema['enum']}, got {value!r:.80}")
    if kind == "string":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise bad
    elif kind == "integer":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        if not isinstance(value, int):
            raise bad
    elif kind == "number":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if not isinstance(value, int | float):
            raise bad
    elif kind == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise bad
    elif kind == "array":
        if not isinstance(value, list):
            raise bad
    elif kind == "object":
        if not isinstance(value, dict):
            raise bad
    return value
