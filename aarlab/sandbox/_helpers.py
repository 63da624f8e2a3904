"""Helpers built on the sandbox protocol or shared by the local backends.

- ``snapshot_tar`` / ``extract_tar_safely``: move a workspace subtree as a tar (the code store, the verifier
  and ``snapshot_fetch`` use them), refusing anything that could write or point outside the destination.
- ``WorkspaceFiles``: ``read_file``/``write_file``/``list_files`` on a host directory, for backends whose
  workspace is a host directory bind-mounted into the sandbox (bwrap, process, docker).
- ``run_capped``: run a host process with a wall-clock timeout that kills its whole tree and with its output
  capped, the common core of every local backend's ``exec``.
"""

from __future__ import annotations

import contextlib
import io
import os
import selectors
import signal
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from aarlab.sandbox._base import ExecResult, Sandbox, SandboxError

# Caches and environments that never belong in a snapshot: large, machine-specific, regenerated on demand.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    "__pycache__",
    "*.pyc",
    ".venv",
    "venv",
    ".git",
    ".cache",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "wandb",
    "*.egg-info",
)
DEFAULT_MAX_SNAPSHOT_BYTES = 50 * 1024 * 1024


# ---------------------------------------------------------------- workspace-relative paths


def relative_path(path: str | os.PathLike) -> PurePosixPath:
    """Normalise a workspace-relative path; absolute paths and ``..`` that climb out raise ``SandboxError``.

    ``/workspace/x`` (the in-sandbox absolute path) is accepted as ``x`` because agents think in those terms.
    """
    raw = str(path).replace("\\", "/")
    if raw in ("/workspace", "/workspace/"):
        raw = "."
    elif raw.startswith("/workspace/"):
        raw = raw[len("/workspace/") :]
    pure = PurePosixPath(raw)
    if pure.is_absolute():
        raise SandboxError(f"path {path!s} is outside the workspace (use a path relative to /workspace)")
    parts: list[str] = []
    for part in pure.parts:
        if part == "..":
            if not parts:
                raise SandboxError(f"path {path!s} leaves the workspace")
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _excluded(rel: PurePosixPath, exclude: Iterable[str]) -> bool:
    return any(fnmatch(part, pattern) for part in rel.parts for pattern in exclude)


class WorkspaceFiles:
    """File access to a workspace that is a host directory, never following a link out of it."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def host_path(self, path: str | os.PathLike, must_exist: bool = False) -> Path:
        """The host path for a workspace-relative path, after checking that symlinks keep it inside."""
        rel = relative_path(path)
        root = self.root.resolve()
        target = (root / rel).resolve()  # follows symlinks planted in the workspace
        if target != root and root not in target.parents:
            raise SandboxError(f"path {path!s} resolves outside the workspace")
        if must_exist and not target.exists():
            raise SandboxError(f"no such file in the workspace: {rel}")
        return target

    def read_file(self, path: str) -> bytes:
        target = self.host_path(path, must_exist=True)
        if not target.is_file():
            raise SandboxError(f"not a regular file: {relative_path(path)}")
        return target.read_bytes()

    def write_file(self, path: str, data: bytes | str) -> None:
        rel = relative_path(path)
        if rel == PurePosixPath("."):
            raise SandboxError("cannot write to the workspace directory itself")
        target = self.host_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        # a second check after mkdir: a parent may be a symlink created between the two calls
        self.host_path(rel)
        payload = data.encode() if isinstance(data, str) else bytes(data)
        tmp = target.with_name(f".{target.name}.aarlab-tmp-{os.getpid()}")
        tmp.write_bytes(payload)
        os.replace(tmp, target)

    def list_files(self, path: str = ".") -> list[str]:
        base = self.host_path(path)
        if not base.exists():
            return []
        root = self.root.resolve()
        if base.is_file():
            return [base.relative_to(root).as_posix()]
        found = []
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames.sort()
            for name in filenames:
                full = Path(dirpath) / name
                if full.is_symlink():
                    continue
                found.append(full.relative_to(root).as_posix())
        return sorted(found)


# ---------------------------------------------------------------- snapshots


def _tar_directory(
    base: Path, exclude: Iterable[str], max_bytes: int, skip: Callable[[Path], bool] | None = None
) -> bytes:
    """Tar the regular files under ``base`` (paths relative to it); symlinks and special files are skipped."""
    exclude = tuple(exclude)
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            here = Path(dirpath)
            rel_dir = PurePosixPath(here.relative_to(base).as_posix())
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not _excluded(rel_dir / d, exclude) and not (here / d).is_symlink()
            )
            for name in sorted(filenames):
                full = here / name
                rel = rel_dir / name
                if _excluded(rel, exclude) or (skip and skip(full)):
                    continue
                st = os.lstat(full)
                if not stat.S_ISREG(st.st_mode):  # symlinks, fifos, sockets, devices: never
                    continue
                total += st.st_size
                if total > max_bytes:
                    raise SandboxError(
                        f"snapshot is larger than {max_bytes // (1024 * 1024)} MB "
                        f"(at {rel}); exclude data files or raise the limit"
                    )
                info = tarfile.TarInfo(str(rel))
                info.size = st.st_size
                info.mtime = int(st.st_mtime)
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                with open(full, "rb") as fh:
                    tar.addfile(info, fh)
    return buffer.getvalue()


def snapshot_tar(
    sandbox: Sandbox,
    subdir: str = ".",
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    max_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
) -> bytes:
    """A tar (uncompressed, paths relative to ``subdir``) of the regular files under a workspace subtree.

    Symlinks are never followed or stored, caches (``__pycache__``, ``.venv``, …) are left out, and a tree
    larger than ``max_bytes`` raises ``SandboxError`` instead of producing a huge upload. Backends with a
    faster path (a remote actor tars on its own node) provide ``_snapshot_tar``; others go through
    ``list_files``/``read_file``.
    """
    rel = relative_path(subdir)
    own = getattr(sandbox, "_snapshot_tar", None)
    if own is not None:
        return own(str(rel), tuple(exclude), max_bytes)
    files = getattr(sandbox, "files", None)
    if isinstance(files, WorkspaceFiles):
        base = files.host_path(rel, must_exist=True)
        if not base.is_dir():
            raise SandboxError(f"not a directory in the workspace: {rel}")
        return _tar_directory(base, exclude, max_bytes)
    # generic path: through the protocol (slower, but works for any backend)
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sandbox.list_files(str(rel)):
            inner = PurePosixPath(path).relative_to(rel) if rel != PurePosixPath(".") else PurePosixPath(path)
            if _excluded(inner, exclude):
                continue
            data = sandbox.read_file(path)
            total += len(data)
            if total > max_bytes:
                raise SandboxError(f"snapshot is larger than {max_bytes // (1024 * 1024)} MB (at {inner})")
            info = tarfile.TarInfo(str(inner))
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _check_member(member: tarfile.TarInfo) -> PurePosixPath:
    name = member.name
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("/") or "\\" in name:
        raise SandboxError(f"unsafe tar member (absolute path): {name!r}")
    if any(part == ".." for part in pure.parts):
        raise SandboxError(f"unsafe tar member (leaves the destination): {name!r}")
    if member.issym() or member.islnk():
        raise SandboxError(f"unsafe tar member (link): {name!r}")
    if not (member.isfile() or member.isdir()):
        raise SandboxError(f"unsafe tar member (device, fifo or special file): {name!r}")
    return pure


def extract_tar_safely(tar_bytes: bytes, dest: str | os.PathLike, max_bytes: int = 1024**3) -> list[str]:
    """Extract a tar into ``dest``, refusing absolute paths, ``..``, links, devices and oversized archives.

    The archive is checked whole before anything is written, so a refused archive leaves ``dest`` as it was.
    Existing symlinks inside ``dest`` are not followed: a file whose target path resolves outside is refused.
    Returns the extracted file paths (relative, sorted).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        tar = tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:*")
    except tarfile.TarError as exc:
        raise SandboxError(f"not a tar archive: {exc}") from exc
    with tar:
        members = tar.getmembers()
        total = 0
        for member in members:
            _check_member(member)
            total += member.size
        if total > max_bytes:
            raise SandboxError(f"archive expands to {total} bytes, more than the limit of {max_bytes}")
        written = []
        for member in members:
            rel = _check_member(member)
            target = (root / rel).resolve()
            if target != root and root not in target.parents:
                raise SandboxError(f"unsafe tar member (resolves outside the destination): {member.name!r}")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            data = source.read() if source else b""
            if target.is_symlink():
                target.unlink()
            target.write_bytes(data)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
            written.append(rel.as_posix())
    return sorted(written)


# ---------------------------------------------------------------- running a capped, killable process


class _CappedBuffer:
    """Keep the first and last halves of ``cap`` bytes of a stream, counting what is dropped between."""

    def __init__(self, cap: int):
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_cap:
                excess = len(self.tail) - self.tail_cap
                self.dropped += excess
                del self.tail[:excess]

    def text(self) -> tuple[str, bool]:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if self.dropped:
            note = f"\n[... output truncated: {self.dropped} bytes omitted ...]\n"
            return head + note + tail, True
        return head + tail, False


def kill_process_group(pid: int) -> None:
    """SIGKILL a process group; one that is gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _pidfd(pid: int) -> int | None:
    """A descriptor that turns readable when ``pid`` exits (Linux >= 5.3), or None where there is none."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None


# How long the pipes are still read after the command ended: a process that left its group may hold them.
DRAIN_S = 2.0


def run_capped(
    argv: list[str],
    *,
    cwd: str | os.PathLike | None,
    env: dict[str, str] | None,
    timeout: float,
    max_output_bytes: int,
    on_timeout: Callable[[int], None] | None = None,
    after_exit: Callable[[int], None] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> ExecResult:
    """Run ``argv`` in a new session with a wall-clock timeout and capped output; never raises for its failure.

    On timeout the process group is killed (then ``on_timeout(pid)`` is called). Once the main process has
    ended, ``after_exit(pid)`` runs and whatever is left in its group is killed, so nothing the command
    started outlives it. Output beyond ``max_output_bytes`` per stream keeps its head and tail with a note.
    The pipes and a pidfd are watched by one selector in the calling thread: no helper threads, no polling.
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so the whole tree can be killed at once
            pass_fds=pass_fds,
        )
    except OSError as exc:
        return ExecResult(exit_code=127, stderr=f"could not start the command: {exc}", duration_s=0.0)
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    buffers = {out_fd: _CappedBuffer(max_output_bytes), err_fd: _CappedBuffer(max_output_bytes)}
    open_pipes = set(buffers)
    selector = selectors.DefaultSelector()
    for fd in buffers:
        selector.register(fd, selectors.EVENT_READ)
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        selector.register(pidfd, selectors.EVENT_READ)
    deadline = start + timeout
    drain_until: float | None = None  # set when the main process has ended
    timed_out = False

    def ended() -> None:
        nonlocal drain_until
        proc.wait()
        if pidfd is not None and drain_until is None:
            selector.unregister(pidfd)
        if after_exit is not None:
            after_exit(proc.pid)
        kill_process_group(proc.pid)  # a background job still holding the pipes goes too, so reads end
        drain_until = time.monotonic() + DRAIN_S

    try:
        while True:
            now = time.monotonic()
            if drain_until is not None and (not open_pipes or now >= drain_until):
                break
            if drain_until is None and now >= deadline:
                timed_out = True
                kill_process_group(proc.pid)
                if on_timeout is not None:
                    on_timeout(proc.pid)
                ended()
                continue
            wait = (deadline if drain_until is None else drain_until) - now
            if pidfd is None and drain_until is None:
                wait = min(wait, 0.05)  # no pidfd (not Linux): poll the process
            for key, _ in selector.select(max(wait, 0.0)):
                if key.fd == pidfd:
                    if drain_until is None:
                        ended()
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    buffers[key.fd].feed(chunk)
                else:
                    selector.unregister(key.fd)
                    open_pipes.discard(key.fd)
            if pidfd is None and drain_until is None and proc.poll() is not None:
                ended()
    except BaseException:
        kill_process_group(proc.pid)
        proc.wait()
        raise
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
        proc.stdout.close()
        proc.stderr.close()
    stdout, cut_out = buffers[out_fd].text()
    stderr, cut_err = buffers[err_fd].text()
    exit_code = proc.returncode
    if timed_out:
        stderr += f"\n[command timed out after {timeout:g} s and was killed]\n"
        exit_code = 124
    elif exit_code < 0:
        exit_code = 128 - exit_code  # killed by a signal: reported as a shell does (137 for SIGKILL)
    return ExecResult(
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr,
        duration_s=time.monotonic() - start,
        timed_out=timed_out,
        truncated=cut_out or cut_err,
    )


def shell_argv(cmd: str | list[str]) -> list[str]:
    """A string runs under ``bash -c``; a list is the argv itself."""
    if isinstance(cmd, str):
        return ["bash", "-c", cmd]
    if not cmd:
        raise SandboxError("empty command")
    return [str(part) for part in cmd]


class HostWorkspaceSandbox(Sandbox):
    """A backend whose workspace is a directory on this host: file access goes straight to it.

    ``read_file``/``write_file``/``list_files`` are the same for bwrap, process and docker (the workspace is
    bound into the sandbox), so they live here once, on ``WorkspaceFiles``'s path checks.
    """

    def __init__(self, spec):
        super().__init__(spec)
        self.files = WorkspaceFiles(spec.workspace)

    def read_file(self, path: str) -> bytes:
        return self.files.read_file(path)

    def write_file(self, path: str, data: bytes | str) -> None:
        self.files.write_file(path, data)

    def list_files(self, path: str = ".") -> list[str]:
        return self.files.list_files(path)
