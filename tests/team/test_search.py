"""The search researcher: an Optuna study over the configurable method, run through the lab's real tools."""

from __future__ import annotations

import importlib
import json
import os
import re
import runpy
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from team_helpers import AARLAB, REPO, cli, tiny_config, transcript, write_config

from aarlab.sandbox import check_backend
from aarlab.team._search import DIRECTION_SEEDS, SearchDriver, knobs_of
from aarlab.w2s.synthetic import write_synthetic_task

needs_bwrap = pytest.mark.skipif(not check_backend("bwrap")[0], reason="bubblewrap cannot run here")
INTERRUPTED = "This tool call was interrupted by a restart of your harness; it was not run again."


class FakeLab:
    """The hands and the lab in one, for the brain alone: runs jobs synchronously (in this process, for speed:
    the real commands run in ``test_search_researchers_in_a_real_team_run_...``), answers lab tools."""

    def __init__(self, root: Path, budget: int, interrupt_submit: bool = False):
        self.root, self.budget, self.interrupt_submit = root, budget, interrupt_submit
        self.submissions: list[dict] = []
        self.posts: list[dict] = []
        self.jobs: dict[str, str] = {}
        self.commands: dict[str, str] = {}

    def run_job(self, command: str) -> None:
        """``[PYTHONPATH=P...] python -m MODULE ARGS; echo $? > RC``, the module run in-process."""
        head, rc_path = command.split("; echo $? > ")
        module, *argv = shlex.split(head.split("python -m ", 1)[1])
        path = re.search(r"PYTHONPATH=([^$\s]+)", head)
        old_argv, old_cwd = sys.argv, os.getcwd()
        os.chdir(self.root)
        try:
            (self.root / "search" / "runs").mkdir(parents=True, exist_ok=True)
            if path:  # the published entry point, run as ``python -m`` would
                sys.argv = [module, *argv]
                runpy.run_path(str(self.root / path.group(1) / f"{module}.py"), run_name="__main__")
            else:
                importlib.import_module(module).main(argv)
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv = old_argv
            os.chdir(old_cwd)
        (self.root / rc_path.strip()).write_text(f"{rc}\n")

    def answer(self, action: dict) -> dict:
        tool, args = action["tool"], action["arguments"]
        if tool == "job_list":
            lines = [f"{n}: {s} · 1 s · slot 0" for n, s in self.jobs.items()]
            return {"content": "no jobs yet; 1 slot(s) free" if not lines else "0 of 1 slot(s) in use\n" + "\n".join(lines)}
        if tool == "job_start":
            self.run_job(args["command"])
            self.jobs[args["name"]] = "exited"
            self.commands[args["name"]] = args["command"]
            return {"content": f"started job {args['name']} (slot 0; timeout 3600 s). 0 of 1 slot(s) free."}
        if tool == "job_wait":
            return {"content": "all ended\n" + "\n".join(f"{n}: exited · 1 s" for n in args["names"])}
        if tool == "snapshot_publish":
            return {"content": f"published snapshot snap{len(self.posts)}x (2 files, 900 bytes) from {args['path']}"}
        if tool == "submit_predictions":
            if self.interrupt_submit:
                self.interrupt_submit = False
                self.submissions.append(args)
                return {"content": INTERRUPTED, "is_error": True}
            if len(self.submissions) >= self.budget:
                return {"content": "submission budget spent: 2 submissions per run", "is_error": True}
            self.submissions.append(args)
            n = len(args["path"])
            left = self.budget - len(self.submissions)
            return {"content": f"submission #{len(self.submissions)} ({n} seeds) on the public test part: accuracy "
                               f"0.800, PGR 0.450 ± 0.040 (seed SE), test-sampling SE 0.050 (coarse: accuracy on a "
                               f"grid of 0.025). To report it, pass submission_id={len(self.submissions)}. "
                               f"Submissions left: {left} this run, {left} this hour."}
        if tool == "forum_post":
            self.posts.append(args)
            return {"content": f"posted #{len(self.posts)} ({args['kind']}): {args['title']!r}"}
        return {"content": "ok"}


def _drive(root: Path, task: Path, lab: FakeLab, options: dict, plans: int = 80) -> list[list[dict]]:
    """Plan, act, hand the results back, until the brain finishes (or ``plans`` run out)."""
    history, inbox = [], None
    for _ in range(plans):
        driver = SearchDriver(root)  # a fresh process every plan, as in the sandbox
        if not driver.state:
            driver.init("ada", "distillation", str(task), options)
        actions = driver.plan(inbox)
        history.append(actions)
        if any(a["tool"] == "finish" for a in actions):
            break
        inbox = {"results": {a["aid"]: lab.answer(a) for a in actions}, "notes": []}
    return history


def _fast_task(root: Path, n_unlabel: int = 150, n_test: int = 60) -> Path:
    """A synthetic task whose strong model trains two epochs instead of eight (main and held-out split
    alike, so the verifier re-runs the same method): every run is a few dozen optimiser steps."""
    write_synthetic_task(root, n_unlabel=n_unlabel, n_test=n_test)
    for path in (root / "public" / "task.json", root / "private" / "heldout" / "public" / "task.json"):
        info = json.loads(path.read_text())
        info["extra"]["model_overrides"] = {"hashbow-strong": {"epochs": 2}}
        path.write_text(json.dumps(info))
    return root


@pytest.fixture
def task(tmp_path):
    return _fast_task(tmp_path / "task") / "public"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The jobs run in this process here; one thread each, as ``OMP_NUM_THREADS=1`` gives the real ones."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_brain_halves_explores_cheaply_submits_three_seeds_within_budget_and_persists_its_study(tmp_path, task):
    import optuna

    root = tmp_path / "ws"
    root.mkdir()
    lab = FakeLab(root, budget=3)
    history = _drive(root, task, lab, {"max_trials": 6, "negatives_per_post": 1})
    tools = [a["tool"] for actions in history for a in actions]
    assert tools[-2:] == ["leaderboard", "finish"]
    starts = [a["arguments"]["name"] for actions in history for a in actions if a["tool"] == "job_start"]
    cheap, seeds, finals = ([n for n in starts if f"-{kind}" in n] for kind in "csf")
    # Every trial starts cheap (one seed); only promoted ones get three seeds, and only submitted ones three
    # final runs.
    assert len(cheap) == 6 and len(seeds) % 3 == 0 and 3 <= len(seeds) < 3 * 6
    assert len(finals) == 3 * len(lab.submissions) and len(finals) < len(seeds)
    state = json.loads((root / "search" / "state.json").read_text())
    # The rungs predict the held-aside slice only; the lab's test set is predicted by the final runs alone,
    # and they run the published entry point itself on the task, as the verifier will.
    for name in cheap + seeds:
        assert len(json.loads((root / "search" / "runs" / f"{name}.json").read_text())) == state["n_aside"]
    for name in finals:
        assert len(json.loads((root / "search" / "runs" / f"{name}.json").read_text())) == 60
        assert re.search(rf"python -m searched_t\d+ --data-dir {re.escape(str(task))} ", lab.commands[name])
    # The lab's budget of 3 with one kept in reserve: at most two submissions, each of three seeds.
    assert 1 <= len(lab.submissions) <= 2
    assert all(len(s["path"]) == 3 and s["snapshot_id"] for s in lab.submissions)
    results = [p for p in lab.posts if p["kind"] == "result"]
    assert len(results) == len(lab.submissions)
    for post in results:
        assert post["metrics"]["seeds"] == 3 and post["metrics"]["pgr"] == 0.45 and post["submission_id"]
        assert post["entry_point"].startswith("searched_t")
        snap = root / "search" / "snap" / post["entry_point"].removeprefix("searched_")
        assert (snap / "config.json").is_file() and (snap / f"{post['entry_point']}.py").is_file()
    # The first trial is the vanilla control (the empty config), then the direction's own region.
    assert json.loads((root / "search" / "trials" / "t0" / "config.json").read_text()) == {}
    seeded = json.loads((root / "search" / "trials" / "t1" / "config.json").read_text())
    assert seeded == knobs_of({**DIRECTION_SEEDS["distillation"][0]}, {"lr": 0.05, "epochs": 2, "batch_size": 32})
    # The study is on disk: a new process sees every trial, told (complete or pruned).
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{root / 'search' / 'study.db'}")
    states = Counter(t.state.name for t in study.trials)
    assert sum(states.values()) == 6 and states["COMPLETE"] >= 1 and states["RUNNING"] == 0
    assert states["PRUNED"] >= 1  # successive halving cut something
    assert any(p["kind"] == "error" and "did not pay off" in p["title"] for p in lab.posts)  # negative results


def test_an_interrupted_submission_is_never_sent_again(tmp_path, task):
    root = tmp_path / "ws"
    root.mkdir()
    lab = FakeLab(root, budget=10, interrupt_submit=True)
    _drive(root, task, lab, {"max_trials": 1})
    assert len(lab.submissions) == 1  # the interrupted one; counted, not repeated
    state = json.loads((root / "search" / "state.json").read_text())
    assert state["submissions_made"] == 1 and "not repeated" in state["trials"]["0"]["note"]
    assert not [p for p in lab.posts if p["kind"] == "result"]  # no claim without the lab's reply


def _started(root: Path, task: Path, name: str = "ada", direction: str = "distillation") -> SearchDriver:
    driver = SearchDriver(root)
    driver.init(name, direction, str(task), {})
    return driver


def test_random_start_up_points_drawn_in_separate_plans_differ(tmp_path, task):
    root = tmp_path / "ws"
    _started(root, task).save()
    knobs = []
    for _ in range(6):  # the control and the direction's two points, then the study's own draws
        driver = SearchDriver(root)  # every plan is a fresh process
        driver.state["plans"] += 1
        number, trial = driver._new_trial()
        knobs.append(json.dumps(trial["knobs"], sort_keys=True))
        driver.save()
    assert len(set(knobs[3:])) == 3, knobs[3:]


def test_an_enqueued_point_asked_by_a_plan_killed_before_saving_is_asked_again(tmp_path, task):
    root = tmp_path / "ws"
    _started(root, task).save()
    SearchDriver(root).study().ask()  # the control, asked; the plan dies before saving state.json
    driver = SearchDriver(root)
    driver._drop_orphans()
    asked = [driver._new_trial()[1] for _ in range(3)]
    assert sorted(t["origin"] for t in asked) == ["distillation seed", "distillation seed", "vanilla control"]
    assert {} in [t["knobs"] for t in asked]


def test_a_rung_verdict_replayed_after_a_kill_is_the_same_and_the_study_told_once(tmp_path, task):
    import optuna

    root = tmp_path / "ws"
    driver = _started(root, task)
    values = [0.9, 0.5, 0.95, 0.6, 0.7, 0.97]
    verdicts = []
    for value in values:
        number, _ = driver._new_trial()
        verdicts.append(driver._promoted(number, 1, value))
    # Successive halving at factor 3: the first passes, then only the top third of the rung so far.
    assert verdicts == [True, False, True, False, False, True]
    driver.save()
    number, _ = driver._new_trial()
    driver.save()
    killed = SearchDriver(root)
    first = killed._promoted(number, 1, 0.8)
    killed._tell(number, state="PRUNED")  # told, then killed before state.json was saved
    again = SearchDriver(root)
    assert again._promoted(number, 1, 0.8) == first
    again._tell(number, state="PRUNED")
    frozen = {t.number: t for t in again.study().get_trials()}
    assert frozen[number].state == optuna.trial.TrialState.PRUNED


def test_a_fetched_config_this_search_already_ran_is_not_run_again(tmp_path, task):
    root = tmp_path / "ws"
    driver = _started(root, task)
    driver._new_trial()  # the control: the empty config
    dest = root / "search" / "imports" / "abc"
    dest.mkdir(parents=True)
    (dest / "config.json").write_text("{}")
    driver.state["imported"]["abc"] = {"post": 7, "author": "bob", "state": "fetching"}
    driver._on_snapshot_fetch({"snapshot": "abc", "dest": "search/imports/abc"}, "fetched", False, False)
    assert driver.state["imported"]["abc"]["state"] == "same config as my trial 0"
    assert driver._new_trial()[1]["origin"] != "post #7 by bob"


def test_the_brain_waits_for_the_job_expected_to_end_first(tmp_path, task):
    driver = _started(tmp_path / "ws", task)
    now = time.time()
    driver.state["trials"] = {"0": {"jobs": {
        "t0-f0": {"kind": "f", "started": now - 100, "took_s": 150.0},
        "t1-c0": {"kind": "c", "started": now - 5},
        "t2-c0": {"kind": "c", "started": now - 60, "took_s": 20.0}}}}
    # A final run started long ago still has ~50 s to go; a cheap run just started is done in ~15 s.
    assert driver._next_to_end(["t0-f0", "t1-c0"]) == "t1-c0"


def test_the_search_uses_only_optunas_public_api():
    for name in ("_search.py", "_search_lab.py", "_search_space.py", "_search_hands.py"):
        source = (REPO / "aarlab" / "team" / name).read_text()
        for private in ("._storage", "._trial_id", "trial.Trial(", "_study_id"):
            assert private not in source, (name, private)


def _study_trials(workspace: Path) -> list:
    import optuna

    db = workspace / "search" / "study.db"
    if not db.is_file():
        return []
    try:
        return optuna.load_study(study_name="search", storage=f"sqlite:///{db}").trials
    except (KeyError, Exception):  # the study is being created right now
        return []


@pytest.mark.slow
@needs_bwrap
def test_search_researchers_in_a_real_team_run_survive_kill_minus_nine_and_resume_their_study(tmp_path, capsys):
    task = _fast_task(tmp_path / "task", n_unlabel=150, n_test=100)
    config = write_config(tmp_path / "c.yaml", {**tiny_config(
        team={"agents": 2, "model": "scripted:search"}, verification={"enabled": True, "poll_interval_s": 0.5}),
        "task": {"dir": str(task)}})
    run_dir = tmp_path / "run"
    env = {**os.environ, "AARLAB_SEARCH_OPTIONS": json.dumps({"max_trials": 2, "wait_s": 10})}
    proc = subprocess.Popen([*AARLAB, "run", str(config), "--run-dir", str(run_dir), "--no-live"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill the whole run once the first researcher's study has told a trial (the control: next come its final
    # runs and its submission) and its next trial is under way.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        workspaces = sorted((run_dir / "workspaces").glob("*")) if (run_dir / "workspaces").exists() else []
        if workspaces and sum(t.state.is_finished() for t in _study_trials(workspaces[0])) >= 1:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = workspaces[0]
    before = {t.number: t.state.name for t in _study_trials(first)}
    assert before

    proc = subprocess.Popen([*AARLAB, "resume", str(run_dir), "--no-live"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    assert proc.wait(timeout=420) == 0

    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "finished" and {a["status"] for a in state["agents"]} == {"done"}
    after = {t.number: t.state.name for t in _study_trials(first)}
    # The same study went on: what was told before the kill stays told, and the search reached its end.
    assert all(after[n] == s for n, s in before.items() if s in ("COMPLETE", "PRUNED", "FAIL"))
    assert "RUNNING" not in after.values()
    assert len(json.loads((first / "search" / "state.json").read_text())["trials"]) == 2

    from aarlab.server import LabServer, ServerSettings
    from aarlab.server.client import LabClient

    token = (run_dir / "admin_token").read_text().strip()
    with LabServer(run_dir=run_dir, settings=ServerSettings(admin_token=token, run_dir=run_dir)) as lab, \
            LabClient(lab.url, token) as admin:
        posts = admin.posts(limit=200)
        submissions = admin.submissions()
        board = admin.leaderboard()
    for agent in state["agents"]:
        name = agent["name"]
        records = transcript(run_dir, name)
        assert [r["type"] for r in records].count("start") == 1
        calls = [c for r in records if r["type"] == "turn" for c in r["assistant"]["tool_calls"]]
        names = [c["name"] for c in calls]
        # Real tool calls through the loop: trials as jobs, the brain in the sandbox, the lab's own tools.
        assert names.count("job_start") >= 2 + 3 + 3 and "job_wait" in names and "forum_read" in names, name
        assert any(c["name"] == "bash" and "aarlab.team._search plan" in c["arguments"]["command"] for c in calls)
        mine = [s for s in submissions if s.agent == name]
        # Never one trial submitted twice, never past the budget (30 a run), each with three seeds.
        assert mine and len(mine) <= 30
        assert not [m for m, k in Counter(s.method for s in mine).items() if k > 1], [s.method for s in mine]
        results = [p for p in posts if p.author == name and p.kind == "result"]
        assert results and all(p.metrics["seeds"] >= 3 and p.snapshot_id and p.submission_id for p in results)
    # Posts are not sent twice across the kill.
    assert not [k for k, n in Counter((p.author, p.title) for p in posts).items() if n > 1]
    # The lab re-ran every result from its snapshot (config.json + entry point) on the held-out split.
    assert board.entries and all(e.verification_status == "done" and e.verified_seeds == 3 for e in board.entries)
    # It built on the other researcher's work: a config fetched from a result post and a reply to it.
    replies = [r for p in posts for r in (p.replies or [])]
    assert any(re.search(r"I ran your config.json \(snapshot \S+\) as trial \d+", r.body) for r in replies) or \
        any("imports" in str(p) for p in (run_dir / "workspaces").glob("*/search/imports/*"))
    code, out, err = cli("status", run_dir, capsys=capsys)
    assert code == 0 and "finished" in out
