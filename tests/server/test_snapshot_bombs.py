"""Snapshot header bombs: uploads small on the wire whose tar headers would expand without bound.

A GNU long-name or PAX record is read whole by ``tarfile``; a 58 KB xz upload used to become a 400 MB
member path (21 s, 2.3 GB of server memory, and stored). Each bomb must be refused with a 4xx, quickly,
with bounded server memory, and store nothing. The server runs in its own process so that its peak
resident memory (``VmHWM``) can be read.
"""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
import time
from pathlib import Path

import pytest
from labhelpers import METHOD_FILES, ServerProcess, make_tar

from aarlab.server.client import LabClient, LabError

LONG_NAME_BYTES = 400_000_000


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def _header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(format=tarfile.USTAR_FORMAT if kind != tarfile.GNUTYPE_LONGNAME else tarfile.GNU_FORMAT)


def _stream(compressor, header: bytes, body_size: int) -> bytes:
    """``header``, ``body_size`` bytes of ``a`` (padded to a block), one small file and the end blocks."""
    out = [compressor.compress(header)]
    chunk = b"a" * (1 << 22)
    left = body_size
    while left > 0:
        out.append(compressor.compress(chunk[: min(left, len(chunk))]))
        left -= len(chunk)
    out.append(compressor.compress(b"\0" * (-body_size % 512)))
    out.append(compressor.compress(_header("x.py", tarfile.REGTYPE, 0) + b"\0" * 1024))
    out.append(compressor.flush())
    return b"".join(out)


@pytest.fixture(scope="module")
def xz_long_name_bomb() -> bytes:
    """A GNU long name of 400 MB, xz-compressed to about 58 KB."""
    header = _header("././@LongLink", tarfile.GNUTYPE_LONGNAME, LONG_NAME_BYTES)
    return _stream(lzma.LZMACompressor(preset=0), header, LONG_NAME_BYTES)


@pytest.fixture(scope="module")
def gzip_pax_bomb() -> bytes:
    """A PAX record naming the next member with a 100 MB path, gzip-compressed to about 0.1 MB."""
    size = 100_000_000
    record_head = f"{size} path=".encode()
    header = _header("pax", tarfile.XHDTYPE, size)
    body_len = size - len(record_head) - 1
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as gz:
        gz.write(header + record_head)
        chunk = b"a" * (1 << 22)
        left = body_len
        while left > 0:
            gz.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
        gz.write(b"\n" + b"\0" * (-size % 512))
        gz.write(_header("x.py", tarfile.REGTYPE, 0) + b"\0" * 1024)
    return raw.getvalue()


@pytest.fixture(scope="module")
def many_directories() -> bytes:
    """100,000 directory entries (no files), xz-compressed to about 0.1 MB."""
    blocks = b"".join(_header(f"d/{i}", tarfile.DIRTYPE, 0) for i in range(100_000))
    return lzma.compress(blocks + b"\0" * 1024, preset=0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("bombs")) as proc:
        yield proc


def _refused_quickly(server, agent: LabClient, upload: bytes, message: str) -> None:
    before_rss = _peak_rss_mb(server.proc.pid)
    before = server.client().snapshots()
    start = time.monotonic()
    with pytest.raises(LabError) as info:
        agent.publish_snapshot(upload, "bomb")
    elapsed = time.monotonic() - start
    assert 400 <= info.value.status < 500 and message in info.value.message
    assert len(info.value.message) < 1000
    assert elapsed < 2.0, f"refusal took {elapsed:.1f} s"
    assert _peak_rss_mb(server.proc.pid) - before_rss < 200
    assert server.client().snapshots() == before  # nothing stored


@pytest.mark.slow
def test_xz_long_name_bomb_is_refused_within_the_caps(server, xz_long_name_bomb):
    assert len(xz_long_name_bomb) < 100_000
    agent = LabClient(server.url, server.client().create_agent("bomber").token)
    _refused_quickly(server, agent, xz_long_name_bomb, "extended header")


def test_gzip_pax_bomb_is_refused_within_the_caps(server, gzip_pax_bomb):
    assert len(gzip_pax_bomb) < 300_000
    agent = LabClient(server.url, server.client().create_agent("paxer").token)
    _refused_quickly(server, agent, gzip_pax_bomb, "extended header")


def test_directory_entries_count_against_the_member_limit(server, many_directories):
    agent = LabClient(server.url, server.client().create_agent("dirs").token)
    _refused_quickly(server, agent, many_directories, "members (files and directories)")


def test_a_normal_compressed_snapshot_is_still_stored(server):
    agent = LabClient(server.url, server.client().create_agent("honest").token)
    info = agent.publish_snapshot(make_tar(METHOD_FILES, gz=True), "method")
    assert info.n_files == 2
    assert agent.fetch_snapshot(info.id)
