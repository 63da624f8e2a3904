"""Background jobs in a real bwrap sandbox: start, list, partial output, wait, kill; slots; nothing survives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from aarlab.sandbox import JobError, create

pytestmark = pytest.mark.usefixtures("bwrap_required")


def _until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def _gone(h, marker: str) -> bool:
    return _until(lambda: not h.host_processes_with(marker), 10.0) or not h.host_processes_with(marker)


def test_three_jobs_are_listed_stream_partial_output_and_can_be_waited_for_or_killed(layout, h, tmp_path):
    spec = h.make_spec(layout, job_slots=3, job_state=tmp_path / "jobs.json")
    with create("bwrap", spec) as box:
        jobs = box.jobs
        jobs.start("ticker", "for i in 1 2 3 4; do echo tick $i; sleep 0.4; done", timeout_s=30)
        jobs.start("fails", "echo $AARLAB_JOB; ls /task; exit 3", timeout_s=30)
        jobs.start("sleeper", "echo going to sleep; sleep 300 # JOB-MARKER-sleeper", timeout_s=60)
        assert {j.name for j in jobs.list()} == {"ticker", "fails", "sleeper"}

        # partial output while the ticker still runs
        partial = _until(lambda: "tick 1" in jobs.output("ticker")[0] and jobs.output("ticker")[0])
        assert "tick 1" in partial and "tick 4" not in partial
        assert jobs.get("ticker").running

        ended = jobs.wait(["ticker", "fails"], timeout_s=20)
        assert [(j.name, j.state, j.exit_code) for j in ended] == [("ticker", "exited", 0), ("fails", "exited", 3)]
        assert jobs.output("ticker")[0] == "".join(f"tick {i}\n" for i in range(1, 5))
        # the same isolation and environment as exec: the task mount, and the log in the workspace
        assert jobs.output("fails")[0] == "fails\ntask.json\n"
        assert box.read_file(".jobs/fails.log") == b"fails\ntask.json\n"

        # waiting on a job that outlives the timeout returns it still running
        assert jobs.wait(["sleeper"], timeout_s=0.3)[0].running
        assert h.host_processes_with("JOB-MARKER-sleeper")
        killed = jobs.kill("sleeper")
        assert killed.state == "killed" and not killed.running
        assert _gone(h, "JOB-MARKER-sleeper")

        # the table on disk says the same
        table = json.loads((tmp_path / "jobs.json").read_text())
        assert {j["name"]: j["state"] for j in table["jobs"]} == {"ticker": "exited", "fails": "exited",
                                                                  "sleeper": "killed"}


def test_a_job_past_the_slots_is_refused_naming_what_runs(layout, h):
    with create("bwrap", h.make_spec(layout, job_slots=2)) as box:
        box.jobs.start("one", "sleep 30", timeout_s=60)
        box.jobs.start("two", "sleep 30", timeout_s=60)
        with pytest.raises(JobError) as refused:
            box.jobs.start("three", "echo hi", timeout_s=60)
        message = str(refused.value)
        assert "all 2 job slot(s) are in use" in message and "one (slot 0" in message and "two (slot 1" in message
        box.jobs.kill("one")
        with pytest.raises(JobError, match="is running"):
            box.jobs.start("two", "true", timeout_s=5)
        # a freed slot is taken again
        assert box.jobs.start("three", "echo hi", timeout_s=60).slot == 0


def test_gpus_are_handed_to_jobs_one_each_and_never_shared(layout, h):
    # No GPU is needed to check the bookkeeping: device nodes that do not exist are simply not bound.
    with create("bwrap", h.make_spec(layout, gpus=[3, 5], job_slots=3)) as box:
        first = box.jobs.start("a", "echo $CUDA_VISIBLE_DEVICES", timeout_s=30)
        second = box.jobs.start("b", "echo $CUDA_VISIBLE_DEVICES; sleep 30", timeout_s=30)
        assert (first.gpus, second.gpus) == ([3], [5])
        box.jobs.wait(["a"], timeout_s=10)
        assert box.jobs.output("a")[0] == "3\n"
        cpu_only = box.jobs.start("c", "echo [$CUDA_VISIBLE_DEVICES]", timeout_s=30, gpus=0)
        box.jobs.wait(["c"], timeout_s=10)
        assert cpu_only.gpus == [] and box.jobs.output("c")[0] == "[]\n"
        with pytest.raises(JobError, match="b holds GPU 5"):
            box.jobs.start("d", "true", timeout_s=30, gpus=2)


def test_a_jobs_processes_are_gone_after_its_timeout_and_after_the_sandbox_stops(layout, h):
    box = create("bwrap", h.make_spec(layout, job_slots=2))
    box.start()
    try:
        box.jobs.start("short", "sleep 300 & sleep 300 # JOB-MARKER-timeout", timeout_s=1)
        box.jobs.start("long", "setsid sleep 300 # JOB-MARKER-stop", timeout_s=300)
        ended = box.jobs.wait(["short"], timeout_s=15)[0]
        assert (ended.state, ended.exit_code) == ("timed_out", 124)
        assert _gone(h, "JOB-MARKER-timeout")
        assert h.host_processes_with("JOB-MARKER-stop")
    finally:
        box.stop()
    assert _gone(h, "JOB-MARKER-stop")


def test_a_jobs_cpu_time_is_counted_apart_from_commands(layout, h):
    with create("bwrap", h.make_spec(layout, job_slots=1)) as box:
        box.jobs.start("spin", "timeout 1.5 sh -c 'while :; do :; done'", timeout_s=30)
        # a command run meanwhile is not charged the job's CPU time, nor killed when it ends
        assert box.exec("echo ok", timeout=20).stdout == "ok\n"
        info = box.jobs.wait(["spin"], timeout_s=20)[0]
        assert info.state == "exited" and info.cpu_s > 0.05  # 1.5 s of spinning: less than that on a loaded machine
        assert box.jobs.usage()[0] == pytest.approx(info.cpu_s)


HARNESS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from aarlab.sandbox import SandboxSpec, create
    spec = SandboxSpec(workspace=Path(sys.argv[1]), name="orphans", job_slots=3, job_state=Path(sys.argv[2]),
                       memory_mb=512, tmp_mb=64)
    box = create("bwrap", spec)
    box.start()
    box.jobs.start("quick", "echo finished-output; exit 7", timeout_s=60)
    box.jobs.wait(["quick"], timeout_s=30)
    box.jobs.start("slow", "echo partial; sleep 300 # JOB-MARKER-orphan", timeout_s=600)
    print("ready", flush=True)
    time.sleep(600)
""")


def test_jobs_die_with_a_harness_killed_outright_and_the_next_start_reports_them_lost(layout, h, tmp_path):
    state = tmp_path / "jobs.json"
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, str(layout.alice), str(state)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert harness.stdout.readline().strip() == "ready"
        assert _until(lambda: h.host_processes_with("JOB-MARKER-orphan"))
        time.sleep(0.3)
    finally:
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait()
    assert _gone(h, "JOB-MARKER-orphan"), "a job outlived its harness"

    with create("bwrap", h.make_spec(layout, job_slots=3, job_state=state)) as box:
        lost = box.jobs.take_lost()
        assert [(j.name, j.state, j.command) for j in lost] == [
            ("slow", "lost", "echo partial; sleep 300 # JOB-MARKER-orphan")]
        assert lost[0].runtime_s >= 0
        quick = box.jobs.get("quick")
        assert (quick.state, quick.exit_code) == ("exited", 7)
        assert box.jobs.output("quick")[0] == "finished-output\n"
        assert box.jobs.output("slow")[0] == "partial\n"
        assert box.jobs.take_lost() == []  # told once
