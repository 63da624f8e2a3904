"""Sandboxes as Ray actors on a local Ray: files and commands go through the actor; a killed actor is
recreated from the last workspace snapshot, the agent is told, and work goes on."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from pathlib import Path

import pytest
from ray_helpers import INNER, ray_spec, wait_until_dead

from aarlab.sandbox import Mount, create, snapshot_tar

pytestmark = pytest.mark.slow





def test_commands_and_files_go_through_the_actor(local_ray, tmp_path, task_public):
    head_copy = tmp_path / "workspaces" / "alice"
    head_copy.mkdir(parents=True)
    (head_copy / "resumed.txt").write_text("from before")  # a resumed run's workspace reaches the node
    with create("ray", ray_spec(tmp_path, task_public)) as sandbox:
        assert sandbox.isolates is (INNER == "bwrap")
        assert sandbox.node["pid"] != __import__("os").getpid()
        result = sandbox.exec("cat resumed.txt; echo; cat /task/task.json; echo made > made.txt; id -u")
        assert result.exit_code == 0, result
        assert result.stdout.startswith('from before\n{"name": "synthetic"}\n')
        if INNER == "bwrap":
            # uid 1000 in its own user namespace; a root harness runs it as an unprivileged host uid of its own
            uid = int(result.stdout.split()[-1])
            assert uid == 1000 if __import__("os").geteuid() != 0 else uid >= 200_000
            assert sandbox.exec("pwd").stdout == "/workspace\n"
        # the head's copy follows the node's workspace after each command
        assert (head_copy / "made.txt").read_text() == "made\n"
        sandbox.exec("rm resumed.txt")
        assert not (head_copy / "resumed.txt").exists()
        sandbox.write_file("code/train.py", "print('hi')\n")
        assert sandbox.read_file("made.txt") == b"made\n"
        assert sandbox.list_files() == ["code/train.py", "made.txt"]
        assert sandbox.exec("python code/train.py").stdout == "hi\n"
        with tarfile.open(fileobj=io.BytesIO(snapshot_tar(sandbox, "code"))) as tar:
            assert tar.getnames() == ["train.py"]
        timed = sandbox.exec("sleep 30", timeout=1)
        assert timed.timed_out and timed.exit_code == 124
        sandbox.exec("echo late > late.txt", env={})
        assert sandbox.checkpoint() > 0
    # stop() leaves the head's copy current
    assert (head_copy / "late.txt").read_text() == "late\n"


def test_killed_actor_is_recreated_from_the_last_snapshot(local_ray, tmp_path, task_public):
    events = []
    with create("ray", ray_spec(tmp_path, task_public)) as sandbox:
        sandbox.on_recovery = events.append
        sandbox.write_file("results/seed0.json", '{"acc": 0.8}')
        assert sandbox.exec("echo notes > NOTEBOOK.md").exit_code == 0
        first_pid = sandbox.node["pid"]
        outcome = {}
        running = threading.Thread(
            target=lambda: outcome.setdefault("result", sandbox.exec("echo half > partial.txt; sleep 30")))
        running.start()
        time.sleep(1.5)
        local_ray.kill(sandbox._actor)  # the node dies mid-command
        running.join(timeout=60)
        lost = outcome["result"]
        assert lost.exit_code != 0 and lost.recovered
        assert "recovered" in lost.stderr and "not re-run" in lost.stderr
        assert sandbox.node["pid"] != first_pid
        # everything up to the interrupted command is back; that command's own effects are reported lost
        assert sandbox.read_file("results/seed0.json") == b'{"acc": 0.8}'
        assert sandbox.list_files() == ["NOTEBOOK.md", "results/seed0.json"]
        assert len(sandbox.recoveries) == 1 and events == sandbox.recoveries
        assert sandbox.recoveries[0]["from_node"]["pid"] == first_pid
        # work goes on
        again = sandbox.exec("cat results/seed0.json")
        assert again.exit_code == 0 and again.stdout == '{"acc": 0.8}' and again.recovered is None


def test_idle_actor_loss_is_repaired_and_reported_on_the_next_command(local_ray, tmp_path, task_public,
                                                                       monkeypatch):
    import aarlab.sandbox._ray as ray_backend

    monkeypatch.setattr(ray_backend, "HEARTBEAT_S", 0.5)
    with create("ray", ray_spec(tmp_path, task_public, name="bob")) as sandbox:
        sandbox.write_file("notes.md", "idea")
        local_ray.kill(sandbox._actor)
        deadline = time.monotonic() + 30
        while not sandbox.recoveries and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sandbox.recoveries, "the heartbeat did not notice the lost actor"
        result = sandbox.exec("cat notes.md")
        assert result.exit_code == 0 and result.stdout == "idea"
        assert result.recovered and result.stderr.startswith("[sandbox recovered")


def test_loss_between_commands_is_repaired_before_the_next_one_runs(local_ray, tmp_path, task_public):
    with create("ray", ray_spec(tmp_path, task_public, name="carol")) as sandbox:
        assert sandbox.exec("echo 1 > step1.txt").exit_code == 0
        actor = sandbox._actor
        local_ray.kill(actor)
        wait_until_dead(local_ray, actor)  # ray.kill is asynchronous: the loss must come *between* commands
        result = sandbox.exec("cat step1.txt && echo 2 > step2.txt")
        assert result.exit_code == 0 and result.stdout == "1\n"  # it ran, on the new actor
        assert result.recovered and len(sandbox.recoveries) == 1
        assert sandbox.list_files() == ["step1.txt", "step2.txt"]


def test_writable_mounts_are_refused_on_ray(local_ray, tmp_path, task_public):
    from aarlab.sandbox import SandboxError

    spec = ray_spec(tmp_path, task_public, mounts=[Mount(host=task_public, target=Path("/out"), writable=True)])
    with pytest.raises(SandboxError, match="writable mount"):
        create("ray", spec).start()


def test_verification_job_runs_as_a_ray_task(local_ray, tmp_path, task_public):
    from aarlab.sandbox import run_ray_job

    code = io.BytesIO()
    with tarfile.open(fileobj=code, mode="w") as tar:
        data = b"import json, sys\njson.dump({'n': len(open('/task/task.json').read())}, open('out/p.json', 'w'))\n"
        info = tarfile.TarInfo("method.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    result, collected = run_ray_job("mkdir -p out && python method.py", files=code.getvalue(),
                                    mounts=[Mount(host=task_public, target=Path("/task"))], collect="out",
                                    num_cpus=0.5, inner_backend=INNER, timeout_s=60)
    assert result.exit_code == 0, result.stderr
    with tarfile.open(fileobj=io.BytesIO(collected)) as tar:
        assert tar.getnames() == ["p.json"]
        assert tar.extractfile("p.json").read() == b'{"n": 22}'


def test_head_copy_follows_files_turning_into_directories_and_back(local_ray, tmp_path, task_public):
    with create("ray", ray_spec(tmp_path, task_public, name="dave")) as sandbox:
        head = sandbox.spec.workspace
        sandbox.exec("echo f > a; mkdir -p d/e && echo x > d/e/x.txt; mkdir -p __pycache__ && echo c > __pycache__/c")
        assert (head / "a").read_text() == "f\n" and (head / "d" / "e" / "x.txt").exists()
        assert not (head / "__pycache__").exists()  # caches never travel
        sandbox.exec("rm a && mkdir -p a && echo y > a/y.txt; rm -r d && echo now-a-file > d")
        assert (head / "a" / "y.txt").read_text() == "y\n"
        assert (head / "d").read_text() == "now-a-file\n"
        assert sorted(p.relative_to(head).as_posix() for p in head.rglob("*") if p.is_file()) == ["a/y.txt", "d"]


def test_node_workspaces_are_removed_on_stop_and_after_a_kill(local_ray, tmp_path, task_public):
    import os
    import tempfile
    import uuid

    name = f"tidy{uuid.uuid4().hex[:6]}"

    def left() -> list[Path]:
        return list(Path(tempfile.gettempdir()).glob(f"aarlab-ray-{name}-*"))

    with create("ray", ray_spec(tmp_path, task_public, name=name)) as sandbox:
        sandbox.exec("echo x > x.txt")
        assert len(left()) == 1
        pid = sandbox.node["pid"]
        local_ray.kill(sandbox._actor)  # killed: it never runs close(), its workspace stays behind for now
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        assert sandbox.exec("cat x.txt").stdout == "x\n"  # recovered on a new actor, which sweeps the dead one's
        assert len(left()) == 1
    assert left() == []
