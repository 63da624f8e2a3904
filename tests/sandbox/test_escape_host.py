"""The host side of the escape suite: what the harness does with paths an agent can write to.

An agent can plant any symlink, FIFO or hard link in its workspace and rename things while the harness
reads them. Each test plants what an attacker would and checks that the harness neither wrote to, read
from, nor waited on anything outside the workspace.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
import time
import tracemalloc

import pytest

from aarlab.sandbox import SandboxError, create, extract_tar_safely, snapshot_tar
from aarlab.sandbox._files import WorkspaceFiles

HOST_SECRET = "HOST-SECRET-c41d9e"


@pytest.fixture
def host_file(tmp_path):
    """A host file outside the workspace that the harness can write (a `.pth` in a venv, say)."""
    target = tmp_path / "host" / "victim.pth"
    target.parent.mkdir()
    target.write_text(HOST_SECRET)
    return target


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    return root


def test_write_file_never_writes_through_links_planted_at_temporary_names(workspace, host_file):
    # the old code wrote `.{name}.aarlab-tmp-{pid}`: plant a link at that name for our pid and a spray of others
    for pid in {os.getpid(), *range(1, 400)}:
        os.symlink(host_file, workspace / f".notes.md.aarlab-tmp-{pid}")
    WorkspaceFiles(workspace).write_file("notes.md", "AGENT TEXT\nimport os; os.system('cp labels /workspace')\n")
    assert host_file.read_text() == HOST_SECRET
    assert (workspace / "notes.md").read_text().startswith("AGENT TEXT")
    assert stat.S_IMODE((workspace / "notes.md").stat().st_mode) == 0o644


def test_write_file_refuses_a_symlinked_parent_directory(workspace, host_file):
    os.symlink(host_file.parent, workspace / "sub")
    with pytest.raises(SandboxError, match="symbolic link"):
        WorkspaceFiles(workspace).write_file("sub/victim.pth", "AGENT TEXT")
    with pytest.raises(SandboxError, match="symbolic link"):
        WorkspaceFiles(workspace).write_file("sub/new.txt", "AGENT TEXT")
    assert host_file.read_text() == HOST_SECRET
    assert sorted(p.name for p in host_file.parent.iterdir()) == ["victim.pth"]


def test_write_file_replaces_a_hard_link_instead_of_writing_through_it(workspace, host_file):
    os.link(host_file, workspace / "linked.txt")
    WorkspaceFiles(workspace).write_file("linked.txt", "AGENT TEXT")
    assert host_file.read_text() == HOST_SECRET
    assert (workspace / "linked.txt").read_text() == "AGENT TEXT"
    assert host_file.stat().st_nlink == 1


def test_written_files_never_carry_set_id_bits(workspace):
    script = workspace / "run.sh"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o6755)
    WorkspaceFiles(workspace).write_file("run.sh", "#!/bin/sh\necho hi\n")
    assert stat.S_IMODE(script.stat().st_mode) == 0o755  # executable kept, set-uid/set-gid dropped


def test_read_file_refuses_a_huge_sparse_file_without_reading_it(workspace):
    with open(workspace / "huge.bin", "wb") as fh:
        fh.truncate(900 * 1024 * 1024)
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(SandboxError, match="900.0 MB, larger than the 16 MB") as info:
            WorkspaceFiles(workspace).read_file("huge.bin")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 1.0
    assert peak < 20 * 1024 * 1024
    assert "head/tail" in str(info.value)


def test_read_file_on_a_fifo_returns_at_once(workspace):
    os.mkfifo(workspace / "pipe")
    start = time.monotonic()
    with pytest.raises(SandboxError, match="not a regular file"):
        WorkspaceFiles(workspace).read_file("pipe")
    assert time.monotonic() - start < 1.0
    assert WorkspaceFiles(workspace).list_files() == []


def test_read_file_refuses_links_even_to_files_inside(workspace, host_file):
    (workspace / "real.txt").write_text("mine")
    os.symlink("real.txt", workspace / "alias.txt")
    os.symlink(host_file, workspace / "out.txt")
    files = WorkspaceFiles(workspace)
    for name in ("alias.txt", "out.txt"):
        with pytest.raises(SandboxError, match="symbolic link"):
            files.read_file(name)
    assert files.read_file("real.txt") == b"mine"


SWAPPER = textwrap.dedent("""
    import os, sys, time
    root, secret, name = sys.argv[1], sys.argv[2], sys.argv[3]
    os.chdir(root)
    deadline = time.monotonic() + float(sys.argv[4])
    while time.monotonic() < deadline:
        with open("r.tmp", "w") as fh:
            fh.write("harmless")
        os.rename("r.tmp", name)
        os.symlink(secret, "l.tmp")
        os.rename("l.tmp", name)
""")


def _swapping(root, secret, seconds: float) -> subprocess.Popen:
    """A process that keeps renaming a regular file and a symlink to ``secret`` over ``root/target.txt``."""
    return subprocess.Popen([sys.executable, "-c", SWAPPER, str(root), str(secret), "target.txt", str(seconds)])


@pytest.mark.slow
def test_snapshots_never_follow_a_symlink_swapped_in_while_they_read(workspace, host_file, tmp_path):
    (workspace / "method").mkdir()
    swapper = _swapping(workspace, host_file, 30)
    try:
        for _ in range(500):  # the swapper has started renaming
            if os.path.lexists(workspace / "target.txt"):
                break
            time.sleep(0.01)
        rounds = 0
        with create("process", _spec(workspace)) as sandbox:
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and rounds < 400:
                assert HOST_SECRET.encode() not in snapshot_tar(sandbox)
                for name in sandbox.list_files():
                    with contextlib.suppress(SandboxError):  # gone or a link by now: refused, never followed
                        assert HOST_SECRET.encode() not in sandbox.read_file(name)
                rounds += 1
    finally:
        swapper.kill()
        swapper.wait()
    assert rounds > 20


def _spec(workspace):
    from aarlab.sandbox import SandboxSpec

    return SandboxSpec(workspace=workspace, name="alice", default_timeout_s=30)


def _tar(*members: tuple[str, bytes | None, int]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["a/" + "x" * 256 + "/f.txt", "/".join(["d" * 200] * 21) + "/f.txt"],
                         ids=["component-over-255", "path-over-4096"])
def test_extract_refuses_over_long_paths_before_writing_anything(tmp_path, name):
    dest = tmp_path / "dest"
    archive = _tar(("first.txt", b"1", 0o644), (name, b"2", 0o644))
    with pytest.raises(SandboxError, match="over"):
        extract_tar_safely(archive, dest)
    assert list(dest.iterdir()) == []


def test_extract_replaces_links_at_file_names_and_never_follows_them(tmp_path, host_file):
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(host_file, dest / "victim.pth")
    os.link(host_file, dest / "hard.txt")
    written = extract_tar_safely(_tar(("victim.pth", b"AGENT", 0o644), ("hard.txt", b"AGENT", 0o644)), dest)
    assert written == ["hard.txt", "victim.pth"]
    assert host_file.read_text() == HOST_SECRET
    assert not (dest / "victim.pth").is_symlink() and (dest / "victim.pth").read_bytes() == b"AGENT"


def test_extract_drops_set_id_bits_and_bounds_the_member_count(tmp_path):
    dest = tmp_path / "dest"
    extract_tar_safely(_tar(("bin/tool", b"#!/bin/sh\n", 0o6755), ("dir", None, 0o7777)), dest)
    assert stat.S_IMODE((dest / "bin" / "tool").stat().st_mode) == 0o755
    many = _tar(*((f"d{i}", None, 0o755) for i in range(60)))
    with pytest.raises(SandboxError, match="more than 50 members"):
        extract_tar_safely(many, tmp_path / "many", max_members=50)
