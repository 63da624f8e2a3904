"""Snapshots: move a workspace subtree as a tar, refusing anything that could write or point outside.

The code store, the verifier and ``snapshot_fetch`` use them.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import re
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from aarlab.sandbox._base import Sandbox, SandboxError
from aarlab.sandbox._files import (
    FileTooLarge,
    MissingPath,
    WorkspaceFiles,
    _excluded,
    closing_fd,
    open_dir,
    open_root,
    read_regular,
    relative_path,
    walk_tree,
    write_at,
)

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


def _tar_tree(top_fd: int, exclude: Iterable[str], max_bytes: int) -> bytes:
    """Tar the regular files under the directory ``top_fd`` (paths relative to it), by descriptor.

    Each file is opened with ``O_NOFOLLOW|O_NONBLOCK`` relative to its directory's descriptor and checked on
    that descriptor, so a symlink or FIFO swapped in after the listing is never followed or waited on, and
    a file is cut at its size when opened (its tar header stays true). Files on another device than the top
    directory are skipped: inside a sandbox the agent can only hard-link files of its own workspace (which
    it can read anyway), so a file from another filesystem can only be a mount point, never its own work.
    """
    buffer = io.BytesIO()
    total = 0
    device = os.fstat(top_fd).st_dev
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dir_fd, name, rel in walk_tree(top_fd, exclude):
            try:
                found = read_regular(dir_fd, name, max_bytes - total, device=device)
            except FileTooLarge:
                raise SandboxError(
                    f"snapshot is larger than {max_bytes // (1024 * 1024)} MB "
                    f"(at {rel}); exclude data files or raise the limit"
                ) from None
            if found is None:
                continue  # symlinks, fifos, sockets, devices, other filesystems: never
            data, st = found
            total += len(data)
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mtime = int(st.st_mtime)
            info.mode = 0o755 if st.st_mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _tar_directory(base: Path, exclude: Iterable[str], max_bytes: int) -> bytes:
    """Tar the regular files under the host directory ``base``; symlinks and special files are skipped."""
    with closing_fd(open_root(base)) as top_fd:
        return _tar_tree(top_fd, tuple(exclude), max_bytes)


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
        try:
            with files.directory(rel) as top_fd:
                return _tar_tree(top_fd, tuple(exclude), max_bytes)
        except MissingPath:
            raise SandboxError(f"not a directory in the workspace: {rel}") from None
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


class UnsafeArchive(SandboxError):
    """An archive refused before anything was unpacked: a bomb, a path out, a link, a special file, too big."""


# Bounds on an archive's *structure*, whatever its files: a GNU long name or a PAX record is read whole by
# ``tarfile``, so an unchecked one lets a few KB of xz become a path of hundreds of MB in memory.
MAX_EXTENDED_HEADER_BYTES = 64 * 1024
MAX_PATH_BYTES = 4096  # PATH_MAX
MAX_NAME_BYTES = 255  # NAME_MAX: one path component
DEFAULT_MAX_MEMBERS = 100_000
_BLOCK = 512
_TAR_OVERHEAD_PER_MEMBER = 3 * _BLOCK + MAX_EXTENDED_HEADER_BYTES // 16  # header, padding, a typical PAX record
_NO_DATA_TYPES = {tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                  tarfile.FIFOTYPE}
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")


_DECOMPRESSORS = {
    "gzip": lambda: zlib.decompressobj(wbits=31),
    "bzip2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
}


def _compression(head: bytes) -> str | None:
    """The compression an archive starting with ``head`` uses (what ``tarfile``'s ``r:*`` reads), or None."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"\x5d\x00\x00"):
        return "xz"
    return None


_STEP = 1 << 20  # decompressed bytes per step between header scans


def _decompress_capped(raw: bytes, cap: int, scan: _HeaderScan) -> bytes:
    """``raw`` decompressed (gzip, bzip2, xz or none), refusing more than ``cap`` bytes of output.

    The decompressor is asked for at most a step's worth at a time, and ``scan`` looks at the headers that
    step completed before the next one: a bomb is refused by its first bad header or by the cap, costing at
    most ``cap`` bytes of memory, never what it would expand to.
    """
    kind = _compression(raw[:6])
    if kind is None:
        if len(raw) > cap:
            raise UnsafeArchive(f"archive is larger than the limit of {cap} bytes")
        scan.advance(raw)
        return raw
    make = _DECOMPRESSORS[kind]
    out = bytearray()
    pending = raw
    try:
        while pending:
            decompressor = make()
            data = pending
            while True:
                room = min(cap + 1 - len(out), _STEP)
                if kind == "gzip":
                    out += decompressor.decompress(data, room)
                    data = decompressor.unconsumed_tail
                    done, starved = decompressor.eof, not data
                else:
                    out += decompressor.decompress(data, room)
                    data = b""
                    done, starved = decompressor.eof, decompressor.needs_input
                if len(out) > cap:
                    raise UnsafeArchive(f"archive expands to more than the limit of {cap} bytes ({kind})")
                scan.advance(out)
                if done or scan.finished:
                    break
                if starved:
                    raise UnsafeArchive(f"archive is truncated ({kind} stream ends early)")
            if scan.finished:
                break
            pending = decompressor.unused_data
            if _compression(pending[:6]) != kind:
                break  # trailing padding after the last stream, as tar tools write it
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise UnsafeArchive(f"not a readable {kind} archive ({exc})") from None
    return bytes(out)


def _number(field: bytes) -> int:
    """A tar header's numeric field: octal text, or GNU base-256 when the high bit of the first byte is set."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise UnsafeArchive(f"not a readable tar archive (a header holds the bad number {field[:12]!r})") from None


def _checksums(header: bytes) -> tuple[int, int]:
    """The header's checksum computed both ways tar tools have written it (unsigned and signed bytes)."""
    blanked = header[:148] + b" " * 8 + header[156:]
    unsigned = sum(blanked)
    return unsigned, unsigned - 256 * sum(1 for byte in blanked if byte >= 128)


def _pax_records(buf: bytes) -> dict[bytes, bytes]:
    records, pos = {}, 0
    while pos < len(buf):
        match = _PAX_RECORD.match(buf, pos)
        if not match:
            break
        length = int(match.group(1))
        if length <= 0 or match.start(1) + length > len(buf):
            raise UnsafeArchive("corrupt PAX header record")
        records[match.group(2)] = buf[match.end(2) + 1 : match.start(1) + length - 1]
        pos += length
    return records


def _too_big(max_bytes: int) -> str:
    return f"archive expands past the limit: its files exceed the cap of {max_bytes / 1e6:g} MB"


def _check_path_length(name: bytes) -> None:
    shown = name[:80].decode(errors="replace")
    if len(name) > MAX_PATH_BYTES:
        raise UnsafeArchive(f"unsafe tar member (path of {len(name)} bytes, over {MAX_PATH_BYTES}): {shown!r}…")
    if any(len(part) > MAX_NAME_BYTES for part in name.split(b"/")):
        raise UnsafeArchive(f"unsafe tar member (a path component over {MAX_NAME_BYTES} bytes): {shown!r}…")


class _HeaderScan:
    """Walks the raw 512-byte headers as they are decompressed, before ``tarfile`` reads any of them.

    Refused: a GNU long name/link or PAX header over ``MAX_EXTENDED_HEADER_BYTES``, a path over
    ``MAX_PATH_BYTES`` (or a component over ``MAX_NAME_BYTES``), more than ``max_members`` members
    (directories count), regular files adding up to more than ``max_bytes``, and GNU sparse files.
    """

    def __init__(self, max_bytes: int, max_members: int):
        self.max_bytes, self.max_members = max_bytes, max_members
        self.offset = self.members = self.total = 0
        self.finished = False  # the end-of-archive block was seen
        self._long_name: bytes | None = None
        self._pax: dict[bytes, bytes] = {}
        self._global_pax: dict[bytes, bytes] = {}

    def advance(self, data: bytes | bytearray) -> None:
        """Check every header that ``data`` (the archive so far) holds whole."""
        while not self.finished and self.offset + _BLOCK <= len(data):
            header = bytes(data[self.offset : self.offset + _BLOCK])
            if header.count(0) == _BLOCK:
                self.finished = True
                return
            if _number(header[148:156]) not in _checksums(header):
                raise UnsafeArchive(f"not a readable tar archive (bad header checksum at byte {self.offset})")
            kind = header[156:157]
            size = _number(header[124:136])
            if size < 0:
                raise UnsafeArchive("corrupt tar header (negative size)")
            if kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                        tarfile.SOLARIS_XHDTYPE):
                if size > MAX_EXTENDED_HEADER_BYTES:
                    raise UnsafeArchive(f"unsafe tar member (an extended header of {size} bytes, over "
                                        f"{MAX_EXTENDED_HEADER_BYTES})")
                if self.offset + _BLOCK + size > len(data):
                    return  # its body is not decompressed yet
                self._extended(kind, bytes(data[self.offset + _BLOCK : self.offset + _BLOCK + size]))
                self.offset += _BLOCK + -(-size // _BLOCK) * _BLOCK
                continue
            self._member(kind, header, size)

    def _extended(self, kind: bytes, body: bytes) -> None:
        if kind == tarfile.GNUTYPE_LONGNAME:
            self._long_name = body.split(b"\0", 1)[0]
            _check_path_length(self._long_name)
        elif kind == tarfile.GNUTYPE_LONGLINK:
            _check_path_length(body.split(b"\0", 1)[0])
        else:
            records = _pax_records(body)
            if any(key.startswith(b"GNU.sparse") for key in records):
                raise UnsafeArchive("unsafe tar member (GNU sparse file)")
            for key in (b"path", b"linkpath"):
                if key in records:
                    _check_path_length(records[key])
            (self._global_pax if kind == tarfile.XGLTYPE else self._pax).update(records)

    def _member(self, kind: bytes, header: bytes, size: int) -> None:
        if kind == tarfile.GNUTYPE_SPARSE:
            raise UnsafeArchive("unsafe tar member (GNU sparse file)")
        self.members += 1
        if self.members > self.max_members:
            raise UnsafeArchive(f"archive has more than {self.max_members} members (files and directories)")
        fields = {**self._global_pax, **self._pax}
        if self._long_name is not None:
            name = self._long_name
        elif b"path" in fields:
            name = fields[b"path"]
        else:
            name = header[0:100].split(b"\0", 1)[0]
            prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
            name = prefix + b"/" + name if prefix else name
        _check_path_length(name)
        if b"size" in fields:
            try:
                size = int(fields[b"size"])
            except ValueError:
                raise UnsafeArchive("corrupt PAX header (bad size)") from None
        self.offset += _BLOCK
        if kind not in _NO_DATA_TYPES:  # what tarfile skips as data, so that we stay in step with it
            self.total += size
            if self.total > self.max_bytes:
                raise UnsafeArchive(_too_big(self.max_bytes))
            self.offset += -(-size // _BLOCK) * _BLOCK
        self._long_name, self._pax = None, {}


def open_bounded_tar(raw: bytes, max_bytes: int, max_members: int = DEFAULT_MAX_MEMBERS) -> tarfile.TarFile:
    """A ``TarFile`` over ``raw`` (plain, gzip, bzip2 or xz) after checks that bound its cost in memory and time.

    Decompression stops at ``max_bytes`` of files plus a bounded overhead per member; the raw headers are
    scanned as they come (``_HeaderScan``) so that no GNU long name or PAX record larger than 64 KiB, no path over
    4096 bytes, no more than ``max_members`` members (directories count) and no more than ``max_bytes`` of
    files reach ``tarfile``. Raises ``UnsafeArchive`` (a ``SandboxError``) saying why.
    """
    if not raw:
        raise UnsafeArchive("not a tar archive: it is empty")
    cap = max_bytes + max_members * _TAR_OVERHEAD_PER_MEMBER + 20 * _BLOCK
    data = _decompress_capped(raw, cap, _HeaderScan(max_bytes, max_members))
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchive(f"not a tar archive: {exc}") from None


def _check_member(member: tarfile.TarInfo) -> PurePosixPath:
    name = member.name
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("/") or "\\" in name or "\0" in name:
        raise UnsafeArchive(f"unsafe tar member (absolute path): {name!r}")
    if any(part == ".." for part in pure.parts):
        raise UnsafeArchive(f"unsafe tar member (leaves the destination): {name!r}")
    if member.issym() or member.islnk():
        raise UnsafeArchive(f"unsafe tar member (link): {name!r}")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f"unsafe tar member (device, fifo or special file): {name!r}")
    _check_path_length(name.encode("utf-8", "surrogateescape"))
    return PurePosixPath(*(part for part in pure.parts if part not in (".", "")))


def checked_members(tar: tarfile.TarFile, max_bytes: int) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Every member of ``tar`` with its normalised path, after checking the whole archive.

    Refused (``UnsafeArchive``): absolute paths, ``..``, links, devices, FIFOs, over-long paths, files that
    add up to more than ``max_bytes``, and a path that is a file in one member and a directory in another.
    """
    try:
        members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnsafeArchive(f"corrupt tar archive: {exc}") from None
    checked, total = [], 0
    files: set[PurePosixPath] = set()
    dirs: set[PurePosixPath] = set()
    for member in members:
        rel = _check_member(member)
        total += member.size if member.isfile() else 0
        checked.append((member, rel))
        if member.isfile():
            if rel == PurePosixPath("."):
                raise UnsafeArchive(f"unsafe tar member (a file with no name): {member.name!r}")
            files.add(rel)
        else:
            dirs.add(rel)
        dirs.update(p for p in rel.parents if p != PurePosixPath("."))
    if total > max_bytes:
        raise UnsafeArchive(_too_big(max_bytes))
    both = sorted(files & dirs)
    if both:
        raise UnsafeArchive(f"unsafe tar member ({both[0]} is both a file and a directory)")
    return checked


def _check_destination(root_fd: int, dirs: Iterable[PurePosixPath]) -> None:
    """Refuse before writing when a directory the archive needs is, in ``dest``, a link or a file."""
    seen: set[PurePosixPath] = set()
    for rel in sorted(dirs, key=lambda p: len(p.parts)):
        for depth in range(1, len(rel.parts) + 1):
            prefix = PurePosixPath(*rel.parts[:depth])
            if prefix in seen:
                continue
            seen.add(prefix)
            try:
                with closing_fd(open_dir(root_fd, prefix)):
                    pass
            except MissingPath:
                break  # made by the extraction, below what exists
            except SandboxError:
                raise UnsafeArchive(
                    f"unsafe destination: {prefix} is a symbolic link or a file there; extraction never "
                    "follows links (one could lead outside the destination)"
                ) from None


def extract_tar_safely(
    tar_bytes: bytes, dest: str | os.PathLike, max_bytes: int = 1024**3, max_members: int = DEFAULT_MAX_MEMBERS
) -> list[str]:
    """Extract a tar into ``dest``, refusing absolute paths, ``..``, links, devices and oversized archives.

    The archive is read with bounded memory (``open_bounded_tar``) and checked whole before anything is
    written, so a refused archive leaves ``dest`` as it was. Writing never follows a link: directories are
    opened component by component with ``O_NOFOLLOW`` relative to ``dest``'s descriptor (an existing
    symlinked directory is refused), files are created under a random name with ``O_EXCL`` and renamed
    over their target (a symlink or hard link there is replaced, never written through), with mode 0644 or
    0755 and no set-id bits. Returns the extracted file paths (relative, sorted).
    """
    dest = Path(dest)
    missing = [p for p in (dest, *dest.parents) if not os.path.lexists(p)]
    dest.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # directories made here belong to their parent's owner (the sandbox uid), as files do
        for made in reversed(missing):
            owner = os.stat(made.parent, follow_symlinks=False)
            os.chown(made, owner.st_uid, owner.st_gid, follow_symlinks=False)
    with open_bounded_tar(tar_bytes, max_bytes, max_members) as tar:
        checked = checked_members(tar, max_bytes)
        with closing_fd(open_root(dest)) as root_fd:
            parents = {rel if member.isdir() else rel.parent for member, rel in checked}
            _check_destination(root_fd, parents)
            written = []
            for member, rel in checked:
                if member.isdir():
                    with closing_fd(open_dir(root_fd, rel, create=True)):
                        continue
                source = tar.extractfile(member)
                data = source.read() if source else b""
                with closing_fd(open_dir(root_fd, rel.parent, create=True)) as dir_fd:
                    write_at(dir_fd, rel.name, data, executable=bool(member.mode & 0o111))
                written.append(rel.as_posix())
    return sorted(set(written))
