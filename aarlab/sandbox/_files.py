"""Workspace-relative paths and host-side file access to a workspace that is a host directory.

Every line here touches a directory an agent can write to while we read it: treat it as attack surface.
The agent can plant symlinks, FIFOs and hard links at any name, and rename things while we work. So
nothing here resolves a workspace path and then uses it: every access opens the workspace root once, walks
down one component at a time with ``O_NOFOLLOW`` relative to the parent's descriptor, creates with
``O_CREAT|O_EXCL|O_NOFOLLOW`` under a random name, and checks the *descriptor* (``fstat``), never the path.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from aarlab.sandbox._base import Sandbox, SandboxError

DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024  # what read_file hands back whole; larger files are read in parts
MAX_TREE_DEPTH = 128  # directory levels walked below a listed or tarred directory (one descriptor each)

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer (forever)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
_LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)  # what O_NOFOLLOW|O_DIRECTORY says for a link


class MissingPath(SandboxError):
    """A path in the workspace does not exist (callers that treat "missing" as "empty" catch this one)."""


class FileTooLarge(SandboxError):
    """A file is larger than a reader takes whole; the message tells the agent how to read it instead."""

    def __init__(self, path: str, size: int, limit: int):
        super().__init__(
            f"{path} is {size / 2**20:.1f} MB, larger than the {limit / 2**20:g} MB the file tools read; "
            "use head/tail (or sed -n) in bash to read parts of it"
        )
        self.path, self.size, self.limit = path, size, limit

    def __reduce__(self):  # pickled across Ray's process boundary with its fields, not its message
        return type(self), (self.path, self.size, self.limit)


def relative_path(path: str | os.PathLike) -> PurePosixPath:
    """Normalise a workspace-relative path; absolute paths and ``..`` that climb out raise ``SandboxError``.

    ``/workspace/x`` (the in-sandbox absolute path) is accepted as ``x`` because agents think in those terms.
    """
    raw = str(path).replace("\\", "/")
    if "\x00" in raw:
        raise SandboxError(f"path {raw!r} contains a NUL byte")
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
    return any(fnmatch.fnmatch(part, pattern) for part in rel.parts for pattern in exclude)


def _parts(rel: PurePosixPath) -> tuple[str, ...]:
    return () if rel == PurePosixPath(".") else rel.parts


def open_root(root: str | os.PathLike) -> int:
    """A descriptor of a directory the harness chose (a workspace, a destination).

    The root itself may be reached through symlinks in the harness's own path (``/tmp`` on some systems);
    everything below it is opened with ``open_dir``/``open_file``, which never follow one.
    """
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    except FileNotFoundError:
        raise SandboxError(f"no such directory: {root}") from None
    except NotADirectoryError:
        raise SandboxError(f"not a directory: {root}") from None


def open_dir(root_fd: int, rel: PurePosixPath, create: bool = False) -> int:
    """Open the directory ``rel`` below ``root_fd`` one component at a time, never following a link.

    With ``create`` missing directories are made (mode 0755, relative to their parent's descriptor). A
    component that is a symlink, or not a directory, raises ``SandboxError``; so does a missing one without
    ``create`` (``MissingPath``).
    """
    fd = os.dup(root_fd)
    try:
        for index, part in enumerate(_parts(rel)):
            here = PurePosixPath(*_parts(rel)[: index + 1])
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise MissingPath(f"no such directory in the workspace: {here}") from None
                made = False
                with contextlib.suppress(FileExistsError):  # made meanwhile: the open below checks what it is
                    os.mkdir(part, 0o755, dir_fd=fd)
                    made = True
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _not_a_real_dir(here, exc) from None
                if made:
                    give_to_dir_owner(child, fd)
            except OSError as exc:
                raise _not_a_real_dir(here, exc) from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def give_to_dir_owner(fd: int, dir_fd: int) -> None:
    """As root, hand a file or directory the harness just made (``fd``) to the owner of its directory.

    A root harness runs sandboxes as an unprivileged host uid that owns the workspace (see ``_bwrap``); what
    the harness writes there on the agent's behalf must be the agent's to change, and never root's. Not
    root: files are ours already, and ``fchown`` to another uid would fail anyway.
    """
    if os.geteuid() != 0:
        return
    owner = os.fstat(dir_fd)
    if owner.st_uid != 0 or owner.st_gid != 0:
        os.fchown(fd, owner.st_uid, owner.st_gid)


def _not_a_real_dir(here: PurePosixPath, exc: OSError) -> SandboxError:
    if exc.errno in _LINK_ERRNOS:
        return SandboxError(
            f"{here} is a symbolic link or not a directory: the harness never follows links in the workspace "
            "(one could lead outside it)"
        )
    return SandboxError(f"cannot open {here}: {exc.strerror}")


@contextlib.contextmanager
def closing_fd(fd: int) -> Iterator[int]:
    """``with closing_fd(os.open(...)) as fd:`` closes the descriptor on exit."""
    try:
        yield fd
    finally:
        os.close(fd)


def read_regular(dir_fd: int, name: str, limit: int, device: int | None = None) -> tuple[bytes, os.stat_result] | None:
    """Read the regular file ``name`` in ``dir_fd`` without following a link; None if it is anything else.

    The file is opened non-blocking (a FIFO never waits), checked on its descriptor (regular, on ``device``
    when given) and read up to its size at open time, at most ``limit`` bytes (``FileTooLarge`` past it): a
    file that grows meanwhile is cut where its ``fstat`` said, so a tar header written from it stays true.
    """
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError:  # a symlink (ELOOP), a socket (ENXIO), gone meanwhile: nothing we read
        return None
    with closing_fd(fd):
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (device is not None and st.st_dev != device):
            return None
        if st.st_size > limit:
            raise FileTooLarge(name, st.st_size, limit)
        chunks, left = [], st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:  # shrunk meanwhile: what is there
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), st


def write_at(dir_fd: int, name: str, payload: bytes, executable: bool = False) -> None:
    """Atomically make ``name`` in ``dir_fd`` a new regular file holding ``payload`` (0644, or 0755).

    The data goes to a fresh file created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` under a random name (nothing
    planted in advance can be at it, and an existing link there is an error, never followed), is fsync'd,
    and is renamed over ``name``: a symlink or hard link at ``name`` is replaced, never written through.
    Modes are set on the descriptor and never carry set-id bits.
    """
    for _ in range(8):
        tmp = f".aarlab-tmp-{secrets.token_hex(12)}"
        try:
            fd = os.open(tmp, _CREATE_FLAGS, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:  # someone guessed 96 random bits, or planted a link: another name
            continue
    else:
        raise SandboxError(f"could not create a temporary file next to {name}")
    try:
        with closing_fd(fd):
            give_to_dir_owner(fd, dir_fd)
            os.fchmod(fd, 0o755 if executable else 0o644)
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        if isinstance(exc, OSError) and exc.errno == errno.EISDIR:
            raise SandboxError(f"{name} is a directory; it cannot be replaced by a file") from None
        raise


def walk_tree(top_fd: int, exclude: Iterable[str] = ()) -> Iterator[tuple[int, str, str]]:
    """Every non-directory entry under ``top_fd``: ``(its directory's fd, its name, its path relative to top)``.

    Directories are entered by descriptor with ``O_NOFOLLOW``, so a directory swapped for a symlink while we
    walk is skipped, not followed; one on another device than ``top_fd`` (a mount point) is skipped too.
    Entries come sorted, a directory's files before its subdirectories. The fd is only valid until the next
    item. A tree deeper than ``MAX_TREE_DEPTH`` raises ``SandboxError``.
    """
    # one name at a time: what is below an excluded directory is never reached, so its parts need no check
    patterns = tuple(exclude)
    excluded = re.compile("|".join(fnmatch.translate(p) for p in patterns)).match if patterns else None
    device = os.fstat(top_fd).st_dev
    stack: list[tuple[int, str, Iterator[str] | None]] = [(os.dup(top_fd), "", None)]
    try:
        while stack:
            fd, rel, pending = stack[-1]
            if pending is None:
                with os.scandir(fd) as entries:
                    listing = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
                subdirs = []
                for name, is_dir in listing:
                    if excluded is not None and excluded(name):
                        continue
                    if is_dir:
                        subdirs.append(name)
                    else:
                        yield fd, name, f"{rel}{name}"
                pending = iter(subdirs)
                stack[-1] = (fd, rel, pending)
            name = next(pending, None)
            if name is None:
                os.close(fd)
                stack.pop()
                continue
            if len(stack) > MAX_TREE_DEPTH:
                raise SandboxError(f"{rel}{name}: the directory tree is deeper than {MAX_TREE_DEPTH} levels")
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:  # replaced by a link or a file since the listing: not followed
                continue
            if os.fstat(child).st_dev != device:
                os.close(child)
                continue
            stack.append((child, f"{rel}{name}/", None))
    finally:
        for fd, _, _ in stack:
            os.close(fd)


class WorkspaceFiles:
    """File access to a workspace that is a host directory, never following a link in it."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def host_path(self, path: str | os.PathLike, must_exist: bool = False) -> Path:
        """The host path for a workspace-relative path, after checking that symlinks keep it inside.

        Only for naming a directory to a process that runs inside the sandbox (a command's cwd), where the
        sandbox's own view decides; the harness never reads or writes through it.
        """
        rel = relative_path(path)
        root = self.root.resolve()
        target = (root / rel).resolve()
        if target != root and root not in target.parents:
            raise SandboxError(f"path {path!s} resolves outside the workspace")
        if must_exist and not target.exists():
            raise SandboxError(f"no such file in the workspace: {rel}")
        return target

    @contextlib.contextmanager
    def directory(self, path: str | os.PathLike = ".", create: bool = False) -> Iterator[int]:
        """A descriptor of a workspace directory, opened without following links (closed on exit)."""
        with closing_fd(open_root(self.root)) as root_fd, closing_fd(open_dir(root_fd, relative_path(path), create)) as fd:
            yield fd

    def read_file(self, path: str, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> bytes:
        """The bytes of a regular file; links, FIFOs, devices and files over ``max_bytes`` raise ``SandboxError``."""
        rel = relative_path(path)
        if rel == PurePosixPath("."):
            raise SandboxError("not a regular file: the workspace directory itself")
        try:
            with self.directory(rel.parent) as dir_fd:
                try:
                    st = os.stat(rel.name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    raise MissingPath(f"no such file in the workspace: {rel}") from None
                try:
                    found = read_regular(dir_fd, rel.name, max_bytes)
                except FileTooLarge as exc:
                    raise FileTooLarge(str(rel), exc.size, exc.limit) from None
        except MissingPath:
            raise MissingPath(f"no such file in the workspace: {rel}") from None
        if found is None:
            kind = "a symbolic link (the file tools never follow links)" if stat.S_ISLNK(st.st_mode) else "not a regular file"
            raise SandboxError(f"{rel} is {kind}")
        return found[0]

    def write_file(self, path: str, data: bytes | str) -> None:
        """Create or replace a file (parents are made); see ``write_at`` for why a planted link cannot redirect it."""
        rel = relative_path(path)
        if rel == PurePosixPath("."):
            raise SandboxError("cannot write to the workspace directory itself")
        payload = data.encode() if isinstance(data, str) else bytes(data)
        with self.directory(rel.parent, create=True) as dir_fd:
            try:
                old = os.stat(rel.name, dir_fd=dir_fd, follow_symlinks=False)
                executable = stat.S_ISREG(old.st_mode) and bool(old.st_mode & 0o111)
            except FileNotFoundError:
                executable = False
            write_at(dir_fd, rel.name, payload, executable=executable)

    def list_files(self, path: str = ".") -> list[str]:
        """Regular files under ``path`` (relative to the workspace, sorted); links and special files are left out."""
        rel = relative_path(path)
        try:
            with self.directory(rel.parent if rel != PurePosixPath(".") else ".") as parent_fd:
                if rel == PurePosixPath("."):
                    return self._list_under(parent_fd, rel)
                try:
                    st = os.stat(rel.name, dir_fd=parent_fd, follow_symlinks=False)
                except FileNotFoundError:
                    return []
                if stat.S_ISREG(st.st_mode):
                    return [rel.as_posix()]
                if not stat.S_ISDIR(st.st_mode):
                    return []
                with closing_fd(open_dir(parent_fd, PurePosixPath(rel.name))) as fd:
                    return self._list_under(fd, rel)
        except MissingPath:
            return []

    @staticmethod
    def _list_under(fd: int, rel: PurePosixPath) -> list[str]:
        found = []
        for dir_fd, name, inner in walk_tree(fd):
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    found.append(f"{rel.as_posix()}/{inner}" if rel != PurePosixPath(".") else inner)
        return sorted(found)


class HostWorkspaceSandbox(Sandbox):
    """A backend whose workspace is a directory on this host: file access goes straight to it.

    ``read_file``/``write_file``/``list_files`` are the same for bwrap, process and docker (the workspace is
    bound into the sandbox), so they live here once, on ``WorkspaceFiles``'s descriptor-based access.
    """

    def __init__(self, spec):
        super().__init__(spec)
        self.files = WorkspaceFiles(spec.workspace)

    def read_file(self, path: str, max_bytes: int = DEFAULT_MAX_READ_BYTES) -> bytes:
        return self.files.read_file(path, max_bytes)

    def write_file(self, path: str, data: bytes | str) -> None:
        self.files.write_file(path, data)

    def list_files(self, path: str = ".") -> list[str]:
        return self.files.list_files(path)
