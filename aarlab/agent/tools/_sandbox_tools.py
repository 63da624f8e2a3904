"""Tools that run in the agent's sandbox: bash, python, and file reading, writing, editing and listing.

Paths are relative to the workspace (``/workspace/x`` is accepted as ``x``). Reading an absolute path
outside the workspace (e.g. ``/task/task.json``) goes through the sandbox itself, so it sees exactly what
the agent's commands see.
"""

from __future__ import annotations

from aarlab.agent.tools._registry import ToolContext, ToolError, tool
from aarlab.sandbox import FileTooLarge


def _timeout(ctx: ToolContext, timeout: float | None) -> float:
    """The timeout of a command: what the model asked, capped by the config and the wall-clock left."""
    cap = ctx.agent.config.tool_timeout_s
    value = cap if timeout is None or timeout <= 0 else min(float(timeout), cap)
    left = ctx.agent.budget.remaining_wall_s()
    if left is not None:
        value = max(1.0, min(value, left))
    return value


def format_exec(result) -> str:
    """An ``ExecResult`` as the model sees it: exit code first, then the two streams."""
    head = f"exit code {result.exit_code}" + (" (timed out and killed)" if result.timed_out else "")
    head += f" · {result.duration_s:.1f} s"
    parts = [head]
    if result.stdout:
        parts.append(f"--- stdout ---\n{result.stdout.rstrip()}")
    if result.stderr:
        parts.append(f"--- stderr ---\n{result.stderr.rstrip()}")
    if not result.stdout and not result.stderr:
        parts.append("(no output)")
    return "\n".join(parts)


class CommandFailed(ToolError):
    """A command ran and failed: the model sees its output, marked as an error."""


def _exec(ctx: ToolContext, cmd, timeout: float | None) -> str:
    result = ctx.sandbox.exec(cmd, timeout=_timeout(ctx, timeout))
    text = format_exec(result)
    if result.exit_code != 0 or result.timed_out:
        raise CommandFailed(text)
    return text


@tool(needs="sandbox")
def bash(ctx: ToolContext, command: str, timeout: float | None = None) -> str:
    """Run a bash command in your sandbox (cwd /workspace; no network). Output is capped; long runs should
    write logs to files.

    Args:
        command: The command line, run with bash -c.
        timeout: Seconds before the command and its children are killed (default and maximum: the
            configured tool timeout, at most the time you have left).
    """
    if not command.strip():
        raise ToolError("bash: the command is empty")
    return _exec(ctx, command, timeout)


@tool(needs="sandbox")
def python(ctx: ToolContext, code: str, timeout: float | None = None) -> str:
    """Run a Python program in your sandbox (cwd /workspace) and return what it printed.

    Args:
        code: The program's source code; print what you want to see.
        timeout: Seconds before the program is killed (default and maximum: the configured tool timeout).
    """
    return _exec(ctx, ["python", "-c", code], timeout)


def _is_workspace_path(ctx: ToolContext, path: str) -> bool:
    ws = ctx.agent.config.workspace_dir.rstrip("/")
    return not path.startswith("/") or path == ws or path.startswith(ws + "/")


def _read_bytes(ctx: ToolContext, path: str) -> bytes:
    if _is_workspace_path(ctx, path):
        try:
            return ctx.sandbox.read_file(path)
        except FileTooLarge as exc:
            raise ToolError(f"{path}: file is {exc.size / 2**20:.1f} MB, larger than the {exc.limit / 2**20:g} MB "
                            "the tool reads; use head/tail (or sed -n) in bash to read parts of it") from None
    # Outside the workspace (e.g. /task): read through the sandbox so that its isolation decides.
    result = ctx.sandbox.exec(["cat", "--", path], timeout=60)
    if result.exit_code != 0:
        raise ToolError(f"cannot read {path}: {result.stderr.strip() or 'cat failed'}")
    if result.truncated:
        raise ToolError(f"{path} is too large to read whole; use bash (head, sed -n) to read parts of it")
    return result.stdout.encode()


@tool(needs="sandbox")
def read_file(ctx: ToolContext, path: str, offset: int = 1, limit: int = 400) -> str:
    """Read a text file, a window of lines at a time.

    Args:
        path: The file, relative to /workspace (absolute paths such as /task/task.json are read inside the
            sandbox).
        offset: The first line to show, counting from 1.
        limit: How many lines to show at most.
    """
    data = _read_bytes(ctx, path)
    if b"\x00" in data[:8192]:
        raise ToolError(f"{path} is a binary file ({len(data):,} bytes); inspect it with python instead")
    lines = data.decode("utf-8", errors="replace").splitlines()
    if offset < 1:
        raise ToolError("read_file: offset counts lines from 1")
    if limit < 1:
        raise ToolError("read_file: limit must be at least 1")
    if not lines:
        return f"[{path} is empty]"
    if offset > len(lines):
        raise ToolError(f"{path} has {len(lines)} lines; offset {offset} is past the end")
    window = lines[offset - 1 : offset - 1 + limit]
    end = offset + len(window) - 1
    header = f"[{path}: lines {offset}-{end} of {len(lines)}]"
    more = f"\n[... {len(lines) - end} more lines; read on with offset={end + 1}]" if end < len(lines) else ""
    return header + "\n" + "\n".join(window) + more


@tool(needs="sandbox")
def write_file(ctx: ToolContext, path: str, content: str) -> str:
    """Create or overwrite a file in your workspace (parent directories are created).

    Args:
        path: The file, relative to /workspace.
        content: The complete new content of the file.
    """
    if not _is_workspace_path(ctx, path):
        raise ToolError(f"only your workspace ({ctx.agent.config.workspace_dir}) is writable, not {path}")
    ctx.sandbox.write_file(path, content)
    n_lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    return f"wrote {path} ({len(content.encode()):,} bytes, {n_lines} lines)"


@tool(needs="sandbox")
def edit_file(ctx: ToolContext, path: str, old: str, new: str) -> str:
    """Replace one exact, unique occurrence of a string in a file of your workspace.

    Args:
        path: The file, relative to /workspace.
        old: The exact text to replace, including whitespace and indentation; it must occur exactly once
            (add surrounding lines to make it unique).
        new: The text to put in its place.
    """
    if not _is_workspace_path(ctx, path):
        raise ToolError(f"only your workspace ({ctx.agent.config.workspace_dir}) is writable, not {path}")
    if not old:
        raise ToolError("edit_file: `old` is empty; use write_file to create or overwrite a file")
    if old == new:
        raise ToolError("edit_file: `old` and `new` are the same; nothing to change")
    text = _read_bytes(ctx, path).decode("utf-8")
    count = text.count(old)
    if count == 0:
        hint = ""
        if old.strip() and text.count(old.strip()) == 1:
            hint = " (it does occur once with different surrounding whitespace; copy it exactly)"
        raise ToolError(f"edit_file: the `old` text does not occur in {path}{hint}")
    if count > 1:
        raise ToolError(f"edit_file: the `old` text occurs {count} times in {path}; include more lines to make it unique")
    start = text.index(old)
    updated = text[:start] + new + text[start + len(old):]
    ctx.sandbox.write_file(path, updated)
    first = updated.count("\n", 0, start) + 1
    snippet_lines = updated.splitlines()[max(0, first - 3): first + new.count("\n") + 2]
    snippet = "\n".join(snippet_lines)
    return f"edited {path} (line {first}); the text around the change now reads:\n{snippet}"


@tool(needs="sandbox")
def list_files(ctx: ToolContext, path: str = ".") -> str:
    """List the files under a directory of your workspace (recursively, caches left out).

    Args:
        path: The directory, relative to /workspace.
    """
    files = [f for f in ctx.sandbox.list_files(path) if "__pycache__" not in f and "/.git/" not in f]
    if not files:
        return f"no files under {path}"
    cap = 500
    more = f"\n[... and {len(files) - cap} more]" if len(files) > cap else ""
    return f"{len(files)} files under {path}:\n" + "\n".join(files[:cap]) + more
