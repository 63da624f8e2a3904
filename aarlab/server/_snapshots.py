"""Snapshot tarballs: checked, normalised to a canonical tar, content-addressed; manifests and diffs.

An upload may be a plain or compressed tar. Only regular files and directories are accepted; absolute
paths, ``..`` components, links and device files are refused, as are tars over the size or file-count caps.
The upload is read with bounded memory (``aarlab.sandbox.open_bounded_tar``): decompression stops at
the cap, and GNU long names, PAX records, path lengths and the number of members (directories count, up to
``MEMBERS_PER_FILE`` per allowed file) are checked on the raw headers before ``tarfile`` reads them.
The stored tar is canonical (sorted paths, zeroed owners and times, modes 0644/0755), so the same files
always give the same snapshot id.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import posixpath
import tarfile
from dataclasses import dataclass

from aarlab.errors import UserError
from aarlab.sandbox import UnsafeArchive, open_bounded_tar

MAX_DIFF_FILE_BYTES = 1_000_000
MEMBERS_PER_FILE = 2  # members (files and directories) an upload may hold per file it may hold


@dataclass(frozen=True)
class CanonicalTar:
    id: str  # sha256 of ``data``
    data: bytes
    manifest: list[dict]  # [{"path", "size", "sha256", "mode"}] sorted by path
    size: int  # total bytes of the files


def _clean_path(name: str) -> str:
    if "\x00" in name or "\\" in name:
        raise UserError(f"snapshot rejected: member {name!r} has a forbidden character")
    if name.startswith("/"):
        raise UserError(f"snapshot rejected: member {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UserError(f"snapshot rejected: member {name!r} escapes the snapshot root (path traversal)")
    return "/".join(parts)


def canonicalize(raw: bytes, max_bytes: int, max_files: int) -> CanonicalTar:
    """Check an uploaded tar and rebuild it canonically; a UserError says why it was refused."""
    if not raw:
        raise UserError("snapshot rejected: the upload is empty (send a tar archive as the request body)")
    try:
        archive = open_bounded_tar(raw, max_bytes, max_members=max_files * MEMBERS_PER_FILE)
    except UnsafeArchive as exc:
        raise UserError(f"snapshot rejected: {exc}") from None
    files: dict[str, tuple[bytes, int]] = {}
    total = 0
    with archive:
        try:
            for member in archive:
                path = _clean_path(member.name)
                if member.isdir():
                    continue
                if member.issym() or member.islnk():
                    raise UserError(f"snapshot rejected: member {member.name!r} is a link (only regular files allowed)")
                if not member.isfile():
                    raise UserError(f"snapshot rejected: member {member.name!r} is not a regular file")
                if not path:
                    raise UserError(f"snapshot rejected: member {member.name!r} has no file name")
                total += member.size
                if total > max_bytes:
                    raise UserError(f"snapshot rejected: its files exceed the cap of {max_bytes / 1e6:g} MB")
                if len(files) + 1 > max_files:
                    raise UserError(f"snapshot rejected: more than {max_files} files")
                if path in files:
                    raise UserError(f"snapshot rejected: {path!r} appears twice")
                fh = archive.extractfile(member)
                data = fh.read() if fh is not None else b""
                files[path] = (data, 0o755 if member.mode & 0o111 else 0o644)
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise UserError(f"snapshot rejected: corrupt tar archive ({exc})") from None
    # A file may not also be a directory of another member ("a" and "a/b").
    for path in files:
        parent = posixpath.dirname(path)
        while parent:
            if parent in files:
                raise UserError(f"snapshot rejected: {parent!r} is both a file and a directory")
            parent = posixpath.dirname(parent)
    out = io.BytesIO()
    manifest = []
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            data, mode = files[path]
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
            manifest.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "mode": mode})
    blob = out.getvalue()
    return CanonicalTar(id=hashlib.sha256(blob).hexdigest(), data=blob, manifest=manifest, size=total)


def read_file(blob: bytes, path: str) -> bytes | None:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
        try:
            member = tar.getmember(path)
        except KeyError:
            return None
        fh = tar.extractfile(member)
        return fh.read() if fh is not None else None


def _text(data: bytes) -> list[str] | None:
    if len(data) > MAX_DIFF_FILE_BYTES or b"\x00" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def diff(a_id: str, a_blob: bytes, a_manifest: list[dict], b_id: str, b_blob: bytes, b_manifest: list[dict]) -> dict:
    """Added/removed/changed paths and a unified diff of the text files (binary files named only)."""
    a = {f["path"]: f for f in a_manifest}
    b = {f["path"]: f for f in b_manifest}
    added = sorted(set(b) - set(a))
    removed = sorted(set(a) - set(b))
    changed = sorted(p for p in set(a) & set(b) if a[p]["sha256"] != b[p]["sha256"] or a[p]["mode"] != b[p]["mode"])
    chunks = []
    for path in sorted(set(added) | set(removed) | set(changed)):
        old = read_file(a_blob, path) if path in a else b""
        new = read_file(b_blob, path) if path in b else b""
        old_lines, new_lines = _text(old or b""), _text(new or b"")
        if old_lines is None or new_lines is None:
            chunks.append(f"Binary or large file {path} differs\n")
            continue
        chunks.extend(difflib.unified_diff(old_lines, new_lines,
                                           fromfile=f"a/{path}" if path in a else "/dev/null",
                                           tofile=f"b/{path}" if path in b else "/dev/null"))
    text = "".join(line if line.endswith("\n") else line + "\n" for line in chunks)
    return {"a": a_id, "b": b_id, "added": added, "removed": removed, "changed": changed, "diff": text}
