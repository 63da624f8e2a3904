"""Snapshots: move a workspace subtree as a tar, refusing anything that could write or point outside.

The code store, the verifier and ``snapshot_fetch`` use them.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from aarlab.sandbox._base import Sandbox, SandboxError
from aarlab.sandbox._files import WorkspaceFiles, _excluded, relative_path

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
