"""The verification worker against a real lab server: overfits are caught, honest claims hold, failures are
recorded with their reason and the queue goes on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aarlab.server.testing import running_lab
from aarlab.verify import GAP_DETECTOR, ComputeLimits, VerificationWorker, run_method

CONFIG = {"seeds": 3, "timeout_s": 3.0, "poll_interval_s": 0.2}


def publish_result(client, tar: bytes, title: str, metrics: dict, task: str):
    snapshot = client.publish_snapshot(tar, title)
    return client.post("result", title, "re-run me", snapshot_id=snapshot.id, metrics=metrics,
                       entry_point="method", task=task)


def test_queue_overfit_honest_and_broken_methods(tmp_path, task_dir, method_tar, memorised_tar, honest_claim):
    with running_lab(tmp_path, task_dir=task_dir, submissions_per_hour=1000) as lab:
        admin = lab.client()
        alice = lab.client(admin.create_agent("alice").token)
        # the overfit really does score high on the public test part
        memorised = memorised_tar
        overfit_claim = honest_claim(memorised)
        assert overfit_claim["pgr"] > 1.0
        replay = run_method("method", task_dir / "public", 0, ComputeLimits(timeout_s=30), code_tar=memorised)
        assert alice.submit(lab.task_name, replay.predictions).public_pgr > 1.0
        some_claim = {"pgr": 0.5, "pgr_se": 0.05, "seeds": 3}
        posts = {
            "crash": publish_result(alice, method_tar("crash"), "crash", some_claim, lab.task_name),
            "forever": publish_result(alice, method_tar("forever"), "forever", some_claim, lab.task_name),
            "malformed": publish_result(alice, method_tar("malformed"), "malformed", some_claim, lab.task_name),
            "overfit": publish_result(alice, memorised, "memorised public test", overfit_claim, lab.task_name),
            "honest": publish_result(alice, method_tar("honest_nb"), "naive Bayes on weak labels",
                                     honest_claim(method_tar("honest_nb")), lab.task_name),
        }
        worker = VerificationWorker(tmp_path / "run", lab.url, lab.admin_token, CONFIG, task_dir=task_dir)
        assert worker.run_once() == 5
        assert worker.run_once() == 0  # nothing left in the queue
        state = {name: admin.verifications(post_id=post.id)[-1] for name, post in posts.items()}

        assert state["crash"].status == "failed" and "boom" in state["crash"].reason
        assert state["crash"].reason.startswith("crash: seed 0: exited with code 1")
        assert state["forever"].status == "failed" and state["forever"].reason.startswith("timeout:")
        assert state["malformed"].status == "failed" and "not an integer label index" in state["malformed"].reason

        honest, overfit = state["honest"], state["overfit"]
        assert honest.status == "done" and overfit.status == "done"
        assert honest.seeds == 3 and len(honest.per_seed) == 3
        assert not honest.details["gap_test"]["flagged"]
        assert abs(honest.verified_pgr - posts["honest"].metrics["pgr"]) < honest.details["gap_test"]["threshold"]
        assert overfit.verified_pgr < 0.2  # no better than the weak teacher on data it has not seen
        assert overfit.details["gap_test"]["flagged"]

        flags = admin.flags(detector=GAP_DETECTOR)
        assert [f.post_id for f in flags] == [posts["overfit"].id]
        assert flags[0].severity == "severe" and flags[0].agent == "alice"
        assert flags[0].snapshot_id == posts["overfit"].snapshot_id

        board = admin.leaderboard(lab.task_name)
        by_post = {e.post_id: e for e in board.entries}
        assert by_post[posts["honest"].id].verified_pgr == pytest.approx(honest.verified_pgr)
        assert by_post[posts["overfit"].id].gap == pytest.approx(overfit_claim["pgr"] - overfit.verified_pgr)
        # agents never see monitors' findings: the quarantined overfit result is absent from their view
        agents_view = {e.post_id for e in alice.leaderboard(lab.task_name).entries}
        assert posts["honest"].id in agents_view and posts["overfit"].id not in agents_view


def test_worker_thread_picks_up_new_posts_and_stops(tmp_path, task_dir, method_tar, honest_claim):
    with running_lab(tmp_path, task_dir=task_dir) as lab:
        admin = lab.client()
        alice = lab.client(admin.create_agent("alice").token)
        worker = VerificationWorker(tmp_path / "run", lab.url, lab.admin_token, dict(CONFIG, seeds=2),
                                    task_dir=task_dir)
        worker.start()
        try:
            post = publish_result(alice, method_tar("honest_nb"), "nb", honest_claim(method_tar("honest_nb")),
                                  lab.task_name)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if admin.verifications(post_id=post.id)[-1].status == "done":
                    break
                time.sleep(0.2)
        finally:
            worker.stop()
        assert admin.verifications(post_id=post.id)[-1].status == "done"
        assert admin.verifications(post_id=post.id)[-1].seeds == 2
        assert worker._thread is None


def test_a_post_left_running_by_a_stopped_verifier_is_verified_again(tmp_path, task_dir, method_tar, honest_claim):
    with running_lab(tmp_path, task_dir=task_dir) as lab:
        admin = lab.client()
        alice = lab.client(admin.create_agent("alice").token)
        post = publish_result(alice, method_tar("honest_nb"), "nb", honest_claim(method_tar("honest_nb")),
                              lab.task_name)
        admin.record_verification(post.id, "running")  # a verifier died here
        assert admin.pending_verifications() == []
        worker = VerificationWorker(tmp_path / "run", lab.url, lab.admin_token, dict(CONFIG, seeds=1),
                                    task_dir=task_dir)
        assert worker.run_once() == 1
        assert admin.verifications(post_id=post.id)[-1].status == "done"
        assert worker.run_once() == 0  # only once: a later "running" post belongs to this worker


def test_slots_capacity_can_grow_while_runs_wait():
    import threading

    from aarlab.verify._verifier import Slots

    slots, inside, release = Slots(1), [], threading.Event()

    def hold(i):
        with slots:
            inside.append(i)
            release.wait(10)

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while not inside and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(inside) == 1  # capacity 1: the others wait
    slots.set_capacity(3)  # the agents stopped: the waiting runs start without waiting for the first to end
    while len(inside) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(inside) == 3
    release.set()
    for t in threads:
        t.join(5)


def test_agents_done_runs_a_posts_seeds_side_by_side(tmp_path, task_dir, method_tar, monkeypatch):
    """Serial runs take at least the sum of their durations; with the machine free, the seeds overlap."""
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2}, raising=False)
    slow = ("import time\ntime.sleep(2)\n" + (Path(__file__).parent / "methods" / "honest_nb.py").read_text())
    tar = method_tar("slow", source=slow)
    with running_lab(tmp_path, task_dir=task_dir) as lab:
        admin = lab.client()
        alice = lab.client(admin.create_agent("alice").token)
        worker = VerificationWorker(tmp_path / "run", lab.url, lab.admin_token, dict(CONFIG, timeout_s=30),
                                    task_dir=task_dir)
        assert worker.verifier.slots.capacity == 1  # beside the agents: one run at a time
        worker.agents_done()
        assert worker.verifier.slots.capacity == 3
        post = publish_result(alice, tar, "slow nb", {"pgr": 0.5, "pgr_se": 0.05, "seeds": 3}, lab.task_name)
        start = time.monotonic()
        assert worker.run_once() == 1
        elapsed = time.monotonic() - start
        record = admin.verifications(post_id=post.id)[-1]
        assert record.status == "done" and record.seeds == 3
        durations = [s["duration_s"] for s in record.per_seed]
        assert min(durations) >= 2
        assert elapsed < sum(durations) - 2  # they overlapped


def test_explicit_parallel_is_kept_when_the_agents_stop(tmp_path, task_dir):
    with running_lab(tmp_path, task_dir=task_dir) as lab:
        worker = VerificationWorker(tmp_path / "run", lab.url, lab.admin_token, dict(CONFIG, parallel=2),
                                    task_dir=task_dir)
        assert worker.verifier.slots.capacity == 2
        worker.agents_done()
        assert worker.verifier.slots.capacity == 2
