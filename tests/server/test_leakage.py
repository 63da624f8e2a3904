"""Label leakage: no reply carries labels or per-example correctness, and adaptive submissions within the
default budget cannot reconstruct the public labels much better than chance."""

from __future__ import annotations

import random
import statistics

import httpx
import pytest
from labhelpers import new_agent

from aarlab.server._service import coarse_public_scores, public_step
from aarlab.server.testing import running_lab
from aarlab.w2s.synthetic import write_synthetic_task
from aarlab.w2s.taskdir import TaskDir


def boosting_attack(submit, n: int, budget: int, seed: int = 0) -> list[int]:
    """Blum & Hardt's boosting attack: random guesses weighted by how far their score is above chance."""
    rng = random.Random(seed)
    weight = [0.0] * n
    for _ in range(budget):
        guess = [rng.randrange(2) for _ in range(n)]
        advantage = submit(guess) - 0.5
        for i, g in enumerate(guess):
            weight[i] += advantage if g else -advantage
    return [1 if w > 0 else 0 for w in weight]


def flip_attack(submit, n: int, budget: int) -> list[int]:
    """Flip one prediction at a time from a base and read its label from the direction the score moves."""
    base = [0] * n
    best = submit(base)
    guess = [0] * n
    for i in range(min(n, budget - 1)):
        probe = list(base)
        probe[i] = 1
        score = submit(probe)
        if score != best:
            guess[i] = 1 if score > best else 0
            best = max(best, score)
    return guess


def public_agreement(task_dir, guess: list[int]) -> float:
    rows = TaskDir(task_dir).test_labels()
    public = [(g, r["label"]) for g, r in zip(guess, rows, strict=True) if r["part"] == "public"]
    return sum(g == y for g, y in public) / len(public)


def exact_oracle(task_dir):
    """What a naive server (accuracy rounded to 2 decimals, no ladder) would answer."""
    rows = TaskDir(task_dir).test_labels()

    def submit(guess):
        public = [(g, r["label"]) for g, r in zip(guess, rows, strict=True) if r["part"] == "public"]
        return round(sum(g == y for g, y in public) / len(public), 2)

    return submit


@pytest.mark.parametrize("n_test, per_hour, limit", [
    (200, None, 0.62),   # the default task size and the default budget: 20 submissions in the hour
    pytest.param(1000, 100, 0.6, marks=pytest.mark.slow),  # a whole run's default budget at once, larger task
])
def test_adaptive_submissions_stay_near_chance(tmp_path, n_test, per_hour, limit):
    task_dir = write_synthetic_task(tmp_path / "task", n_test=n_test, n_unlabel=20)
    # A fixed admin token fixes the scores' dither key, so the run is deterministic (no flaky margin).
    settings = {"admin_token": "leakage-test-admin-token-0001"}
    if per_hour:
        settings["submissions_per_hour"] = per_hour
    with running_lab(tmp_path, task_dir=task_dir, **settings) as lab:
        budget = min(lab.settings.submissions_per_hour, lab.settings.submissions_per_run)
        results = {}
        for name, attack in (("boosting", boosting_attack), ("flip", flip_attack)):
            agent = new_agent(lab)
            guess = attack(lambda g, agent=agent: agent.submit(lab.task_name, g).public_accuracy, n_test, budget)
            results[name] = public_agreement(task_dir, guess)
            assert agent.budget(lab.task_name).remaining_hour == 0  # the attack used the whole budget
    assert max(results.values()) <= limit, results
    # The same boosting attack against a naive server (exact public accuracy to 2 decimals) does learn the
    # labels: this test would catch a server that stopped defending.
    naive = public_agreement(task_dir, boosting_attack(exact_oracle(task_dir), n_test, budget))
    print(f"n_test={n_test} budget={budget}: {results}, naive server boosting {naive:.3f}")
    assert naive > limit, naive


def test_replies_carry_no_per_example_information(lab, agent):
    result = agent.submit(lab.task_name, [1] * lab.task.n_test)
    assert set(result.model_dump()) == {"id", "task", "public_accuracy", "public_pgr", "remaining_run",
                                        "remaining_hour", "hash", "snapshot_id", "created", "improved", "note"}
    raw = httpx.get(f"{lab.url}/api/eval/submissions/{result.id}",
                    headers={"Authorization": f"Bearer {agent.token}"}).json()
    assert "predictions" not in raw and "private_pgr" not in raw and "public_acc" not in raw
    spec = httpx.get(f"{lab.url}/api/openapi.json").text
    assert "test_labels" not in spec and "correct" not in spec.lower()


def test_coarse_scores_are_deterministic_unbiased_and_hide_single_flips():
    key = b"k" * 32
    n_public, weak, ceiling = 500, 0.7, 0.9
    step = public_step(n_public, 2)
    assert step == 0.01 and public_step(100, 2) == 0.02 and public_step(1000, 2) == 0.01
    acc = 0.7351  # between two grid points
    shown = [coarse_public_scores(acc, weak, ceiling, n_public, 2, key, f"{i:064x}")[0] for i in range(4000)]
    assert set(shown) == {0.73, 0.74}
    assert statistics.mean(shown) == pytest.approx(acc, abs=0.001)
    assert coarse_public_scores(acc, weak, ceiling, n_public, 2, key, "a" * 64) == \
        coarse_public_scores(acc, weak, ceiling, n_public, 2, key, "a" * 64)
    # PGR is derived from the coarse accuracy, not rounded separately from the exact one.
    a, p = coarse_public_scores(acc, weak, ceiling, n_public, 2, key, "b" * 64)
    assert p == round((a - weak) / (ceiling - weak), 2)
    # One flipped prediction (1/n_public of accuracy) at a rounding boundary changes the answer only with
    # probability ~ 1/(n_public * step), instead of always for plain rounding.
    at_boundary = 0.745
    changed = sum(
        coarse_public_scores(at_boundary, weak, ceiling, n_public, 2, key, f"{i:064x}")[0]
        != coarse_public_scores(at_boundary + 1 / n_public, weak, ceiling, n_public, 2, key, f"{i + 10**6:064x}")[0]
        for i in range(2000)) / 2000
    assert changed < 0.65 and round(at_boundary, 2) != round(at_boundary + 1 / n_public, 2)


def test_ladder_reports_only_real_improvements(lab):
    agent = new_agent(lab)
    rows = TaskDir(lab.task_dir).test_labels()
    labels = [r["label"] for r in rows]
    first = agent.submit(lab.task_name, [1 - y for y in labels])  # everything wrong
    assert first.improved and first.public_accuracy == 0.0
    worse = agent.submit(lab.task_name, [1 - y for y in labels[:-1]] + [labels[-1]])
    assert not worse.improved and worse.public_accuracy == first.public_accuracy and "best" in worse.note
    perfect = agent.submit(lab.task_name, labels)
    assert perfect.improved and perfect.public_accuracy == 1.0 and perfect.public_pgr > 1.0
    assert [s.improved for s in agent.my_submissions()] == [True, False, True]
