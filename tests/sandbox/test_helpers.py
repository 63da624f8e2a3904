"""Helpers shared by the backends: workspace-relative paths, snapshots, safe extraction, capped processes."""

from __future__ import annotations

import io
import os
import tarfile
import time

import pytest

from aarlab.sandbox import SandboxError, create, extract_tar_safely, relative_path, snapshot_tar
from aarlab.sandbox._files import WorkspaceFiles
from aarlab.sandbox._proc import run_capped


@pytest.mark.parametrize(
    ("given", "expected"),
    [("a/b.txt", "a/b.txt"), ("./a//b/../c", "a/c"), ("/workspace/x/y", "x/y"), ("/workspace", "."), (".", ".")],
)
def test_relative_path_normalises_inside_the_workspace(given, expected):
    assert relative_path(given).as_posix() == expected


@pytest.mark.parametrize("given", ["/etc/passwd", "..", "a/../../b", "/workspace/../etc"])
def test_relative_path_refuses_leaving_the_workspace(given):
    with pytest.raises(SandboxError):
        relative_path(given)


def test_workspace_files_round_trip_and_never_follow_symlinks_out(tmp_path):
    root = tmp_path / "ws"
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    files = WorkspaceFiles(root)
    root.mkdir()
    files.write_file("d/e.txt", b"\x00\x01")
    assert files.read_file("d/e.txt") == b"\x00\x01"
    os.symlink(outside, root / "link.txt")
    with pytest.raises(SandboxError):
        files.read_file("link.txt")
    assert files.list_files() == ["d/e.txt"]
    files.write_file("link.txt", "x")  # replaces the link itself: the file it pointed at is untouched
    assert outside.read_text() == "secret"
    assert not (root / "link.txt").is_symlink() and (root / "link.txt").read_text() == "x"
    with pytest.raises(SandboxError):
        files.read_file("missing.txt")


def test_snapshot_tar_keeps_code_and_drops_caches_links_and_oversize(tmp_path, layout, h):
    with create("process", h.make_spec(layout)) as sandbox:
        sandbox.write_file("method/train.py", "print(1)\n")
        sandbox.write_file("method/__pycache__/train.cpython-311.pyc", b"junk")
        sandbox.write_file("method/.venv/lib/x.py", "x")
        sandbox.write_file("other/notes.md", "n")
        os.symlink(layout.private_labels, layout.alice / "method" / "labels.jsonl")
        data = snapshot_tar(sandbox, "method")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert tar.getnames() == ["train.py"]
        whole = snapshot_tar(sandbox)
        with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
            assert sorted(tar.getnames()) == ["method/train.py", "other/notes.md"]
        sandbox.write_file("method/big.bin", b"0" * 5000)
        with pytest.raises(SandboxError, match="larger than"):
            snapshot_tar(sandbox, "method", max_bytes=1000)
        dest = tmp_path / "restored"
        assert extract_tar_safely(data, dest) == ["train.py"]
        assert (dest / "train.py").read_text() == "print(1)\n"


def _tar(*members: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return buffer.getvalue()


def _member(name: str, kind=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("../evil.txt"),
        _member("/etc/evil"),
        _member("a/../../evil"),
        _member("link", tarfile.SYMTYPE, "/etc/passwd"),
        _member("hard", tarfile.LNKTYPE, "x"),
        _member("dev", tarfile.CHRTYPE),
        _member("fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "symlink", "hardlink", "device", "fifo"],
)
def test_extract_refuses_unsafe_members_and_writes_nothing(tmp_path, member):
    archive = _tar(_member("ok.txt"), member)
    dest = tmp_path / "dest"
    with pytest.raises(SandboxError, match="unsafe"):
        extract_tar_safely(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_extract_does_not_follow_an_existing_symlink_out(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, dest / "sub")
    with pytest.raises(SandboxError, match="outside"):
        extract_tar_safely(_tar(_member("sub/evil.txt")), dest)
    assert not (outside / "evil.txt").exists()


def test_extract_refuses_archives_that_expand_past_the_limit(tmp_path):
    with pytest.raises(SandboxError, match="limit"):
        extract_tar_safely(_tar(_member("big"), data=b"0" * 2000), tmp_path / "d", max_bytes=1000)
    with pytest.raises(SandboxError, match="not a tar"):
        extract_tar_safely(b"not a tar at all", tmp_path / "d")


def test_run_capped_times_out_and_reports_signals():
    start = time.monotonic()
    result = run_capped(["bash", "-c", "echo before; sleep 20"], cwd=None, env=None, timeout=0.5,
                        max_output_bytes=1000)
    assert result.timed_out and result.exit_code == 124 and result.stdout == "before\n"
    assert time.monotonic() - start < 5
    killed = run_capped(["bash", "-c", "kill -9 $$"], cwd=None, env=None, timeout=5, max_output_bytes=1000)
    assert killed.exit_code == 137 and not killed.timed_out
    missing = run_capped(["/nonexistent/program"], cwd=None, env=None, timeout=5, max_output_bytes=1000)
    assert missing.exit_code == 127


def test_run_capped_ends_when_a_background_job_holds_the_pipes():
    result = run_capped(["bash", "-c", "sleep 30 & echo done"], cwd=None, env=None, timeout=20,
                        max_output_bytes=1000)
    assert result.stdout == "done\n" and result.exit_code == 0
    assert result.duration_s < 5


def test_run_capped_keeps_head_and_tail_of_long_output():
    result = run_capped(["bash", "-c", "seq 1 200000"], cwd=None, env=None, timeout=20, max_output_bytes=2000)
    assert result.truncated
    assert result.stdout.startswith("1\n2\n") and result.stdout.rstrip().endswith("200000")
    assert "bytes omitted" in result.stdout


def test_run_capped_works_without_pidfd(monkeypatch):
    # macOS and old kernels have no pidfd: the process is polled instead
    monkeypatch.setattr("aarlab.sandbox._proc._pidfd", lambda pid: None)
    result = run_capped(["bash", "-c", "echo hi; exit 4"], cwd=None, env=None, timeout=10, max_output_bytes=100)
    assert (result.exit_code, result.stdout) == (4, "hi\n")
    timed = run_capped(["bash", "-c", "exec >&- 2>&-; sleep 20"], cwd=None, env=None, timeout=0.5,
                       max_output_bytes=100)
    assert timed.timed_out and timed.duration_s < 5
    background = run_capped(["bash", "-c", "sleep 30 & echo done"], cwd=None, env=None, timeout=20,
                            max_output_bytes=100)
    assert background.stdout == "done\n" and background.duration_s < 5
