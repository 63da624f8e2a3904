"""The node side of a Ray sandbox, without Ray: syncs read by descriptor, and workspaces never outlive it.

``sync_changes`` is what ``SandboxActor.sync`` runs on the node while the agent's commands may still be
renaming files; ``sweep_stale_workspaces`` removes what a killed actor left in the node's temp dir.
"""

from __future__ import annotations

import fcntl
import io
import os
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest

from aarlab.sandbox._ray_node import WORKSPACE_PREFIX, sweep_stale_workspaces, sync_changes

SECRET = "PRIVATE-LABEL-and-API-KEY-93be1c"

SWAPPER = textwrap.dedent("""
    import os, sys, time
    root, secret = sys.argv[1], sys.argv[2]
    os.chdir(root)
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline:
        n += 1
        with open("r.tmp", "w") as fh:
            fh.write(f"harmless {n}")
        os.rename("r.tmp", "labels.jsonl")
        os.symlink(secret, "l.tmp")
        os.rename("l.tmp", "labels.jsonl")
""")


def _names(tar_bytes: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


@pytest.mark.slow
def test_sync_never_reads_a_symlink_swapped_in_by_a_running_command(tmp_path):
    secret = tmp_path / "private" / "test_labels.jsonl"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "train.py").write_text("print(1)\n")
    (workspace / "zdata").mkdir()
    for i in range(2000):  # unchanged files listed after the swapped one: a wider window between check and use
        (workspace / "zdata" / f"{i}.txt").write_text("x")
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(workspace), str(secret)])
    try:
        for _ in range(500):  # the swapper has started renaming
            if os.path.lexists(workspace / "labels.jsonl"):
                break
            time.sleep(0.01)
        manifest, _, _ = sync_changes(workspace, None)
        synced_labels = 0
        deadline = time.monotonic() + 20
        for _ in range(200):
            if time.monotonic() > deadline:
                break
            manifest, tar, _ = sync_changes(workspace, manifest)
            files = _names(tar)
            assert all(SECRET.encode() not in data for data in files.values())
            synced_labels += "labels.jsonl" in files
    finally:
        swapper.kill()
        swapper.wait()
    assert synced_labels > 5  # the race was really run: the regular file was synced many times


def test_sync_sends_only_changes_and_skips_links_and_fifos(tmp_path):
    workspace = tmp_path / "workspace"
    (workspace / "__pycache__").mkdir(parents=True)
    (workspace / "a.py").write_text("a")
    (workspace / "__pycache__" / "a.pyc").write_bytes(b"junk")
    os.symlink(tmp_path, workspace / "up")
    os.mkfifo(workspace / "pipe")
    manifest, tar, _ = sync_changes(workspace, {})
    assert set(_names(tar)) == {"a.py"} and set(manifest) == {"a.py"}
    (workspace / "b.py").write_text("b")
    manifest, tar, _ = sync_changes(workspace, manifest)
    assert set(_names(tar)) == {"b.py"} and set(manifest) == {"a.py", "b.py"}


def test_workspaces_of_dead_processes_are_swept_and_live_ones_kept(tmp_path):
    dead = tmp_path / f"{WORKSPACE_PREFIX}alice-dead"
    live = tmp_path / f"{WORKSPACE_PREFIX}bob-live"
    for root in (dead, live):
        (root / "workspace" / "deep").mkdir(parents=True)
        (root / "workspace" / "deep" / "f").write_text("x")
        (root / ".owner.lock").touch()
    os.chmod(dead / "workspace" / "deep", 0o500)  # what an agent's chmod leaves behind
    holder = os.open(live / ".owner.lock", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a live actor holds its lock
    try:
        assert sweep_stale_workspaces(tmp_path) == [dead]
    finally:
        os.close(holder)
    assert not dead.exists() and live.exists()
