"""Workspace-relative paths and host-side file access to a workspace that is a host directory.

Every line here touches a directory an agent can write to while we read it: treat it as attack surface.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from aarlab.sandbox._base import Sandbox, SandboxError


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
