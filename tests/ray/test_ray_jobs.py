"""Background jobs on a Ray sandbox: work on the agent's actor, run by the same job manager as on bwrap.

Started, listed, read while running, waited for and killed through the actor; their processes go with a
kill, with the sandbox's stop and with the actor; a recreated actor, and a resumed harness, report the jobs
that were lost, and finished jobs keep their exit codes and logs.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from ray_helpers import BWRAP_OK, ray_spec

from aarlab.sandbox import JobError, create

pytestmark = pytest.mark.slow



def _spec(tmp_path, task_public, name: str):
    return ray_spec(tmp_path, task_public, name, job_slots=2, job_state=tmp_path / "jobs" / f"{name}.json")


def _processes_with(marker: str) -> list[int]:
    """Processes on this machine whose command line holds ``marker`` (a job's own ``sleep N``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def _gone(marker: str, limit_s: float = 15.0) -> bool:
    deadline = time.monotonic() + limit_s
    while _processes_with(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _marker() -> str:
    return str(random.randint(300_000, 399_999))  # a sleep length no other process on the machine uses


def _states(path: Path) -> dict[str, str]:
    return {j["name"]: j["state"] for j in json.loads(path.read_text())["jobs"]}


def test_jobs_on_a_ray_actor_are_started_listed_read_waited_killed_and_die_with_the_sandbox(
        local_ray, tmp_path, task_public):
    marker = _marker()
    spec = _spec(tmp_path, task_public, "alice")
    with create("ray", spec) as sandbox:
        jobs = sandbox.jobs
        assert jobs is not None and jobs.slots == 2
        jobs.start("seed1", "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.4; done; echo finished", timeout_s=60)
        jobs.start("hog", f"echo hogging; sleep {marker}2", timeout_s=60)
        with pytest.raises(JobError, match="all 2 job slot"):
            jobs.start("third", "echo never", timeout_s=60)
        assert [(j.name, j.state, j.slot) for j in jobs.list()] == [("seed1", "running", 0), ("hog", "running", 1)]
        assert {j.name for j in jobs.running()} == {"seed1", "hog"}

        deadline = time.monotonic() + 20
        text = ""
        while "tick 1" not in text and time.monotonic() < deadline:
            text, _, _ = jobs.output("seed1")
            time.sleep(0.1)
        assert "tick 1" in text and "finished" not in text  # partial output, while it runs

        [seed1] = jobs.wait(["seed1"], 30)
        assert seed1.state == "exited" and seed1.exit_code == 0
        assert jobs.output("seed1")[0].endswith("tick 6\nfinished\n")
        # a job's end brings its log to the head's copy, and the table to spec.job_state, at once
        assert (spec.workspace / ".jobs" / "seed1.log").read_text().endswith("finished\n")
        assert _states(spec.job_state) == {"seed1": "exited", "hog": "running"}

        assert _processes_with(f"sleep {marker}2")
        assert jobs.kill("hog").state == "killed"
        assert _gone(f"sleep {marker}2"), "a killed job's processes are still there"

        jobs.start("last", f"sleep {marker}3", timeout_s=60)
        assert _processes_with(f"sleep {marker}3")
        events = [(e["event"], e["name"]) for e in jobs.drain_events()]
        assert events == [("start", "seed1"), ("start", "hog"), ("end", "seed1"), ("end", "hog"), ("start", "last")]
        cpu_s, gpu_s = jobs.usage()
        assert cpu_s >= 0 and gpu_s == 0
    assert sandbox.jobs is None
    assert _gone(f"sleep {marker}3"), "a job outlived its sandbox"
    assert _states(spec.job_state) == {"seed1": "exited", "hog": "killed", "last": "killed"}


@pytest.mark.skipif(not BWRAP_OK, reason="jobs die with their actor through bwrap (--die-with-parent, --pdeathsig); "
                    "the process backend does not tie them to it")
def test_jobs_lost_with_the_actor_or_a_crashed_harness_are_reported_and_finished_ones_kept(
        local_ray, tmp_path, task_public):
    marker = _marker()
    spec = _spec(tmp_path, task_public, "bob")
    first = create("ray", spec)
    first.start()
    try:
        jobs = first.jobs
        jobs.start("done", "echo result 0.81; exit 3", timeout_s=60)
        assert jobs.wait(["done"], 30)[0].exit_code == 3
        jobs.start("train", f"echo training; sleep {marker}1", timeout_s=600)
        assert _processes_with(f"sleep {marker}1")
        jobs.drain_events()

        local_ray.kill(first._actor)  # the node dies: its jobs die with the actor
        assert _gone(f"sleep {marker}1"), "a job outlived its actor"
        listed = {j.name: j for j in jobs.list()}  # finds the loss and recreates the actor
        assert len(first.recoveries) == 1
        assert listed["train"].state == "lost" and "lost with its sandbox's node" in listed["train"].detail
        assert listed["done"].state == "exited" and listed["done"].exit_code == 3
        assert [(e["event"], e["name"]) for e in jobs.drain_events()] == [("lost", "train")]
        assert jobs.output("done")[0] == "result 0.81\n"

        # jobs run on the new actor; then the harness is killed (kill -9) while one runs
        jobs.start("train", f"sleep {marker}2", timeout_s=600)
        assert _processes_with(f"sleep {marker}2")
        first._stopping.set()  # a dead harness neither checks nor recovers its actor
        local_ray.kill(first._actor)
        assert _gone(f"sleep {marker}2"), "a job outlived its actor"
    finally:
        first._stopping.set()

    # `aarlab resume`: a new sandbox over the same run directory
    with create("ray", spec) as resumed:
        jobs = resumed.jobs
        [lost] = [e for e in jobs.drain_events() if e["event"] == "lost"]
        assert lost["name"] == "train" and lost["command"] == f"sleep {marker}2" and lost["runtime_s"] >= 0
        assert lost["detail"] == "lost: the harness stopped while it ran"
        listed = {j.name: j for j in jobs.list()}
        assert listed["done"].exit_code == 3 and listed["train"].state == "lost"
        assert resumed.read_file(".jobs/done.log") == b"result 0.81\n"
        assert jobs.usage() == (0.0, 0.0)  # lost and earlier jobs were charged by the harness that ran them
    assert _states(spec.job_state) == {"done": "exited", "train": "lost"}
