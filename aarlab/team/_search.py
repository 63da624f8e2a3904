"""The ``search`` researcher: a non-LLM agent that does real, narrow research through the lab's own tools.

``scripted:search`` is a model whose every action is a real tool call of the agent loop (so transcripts,
monitors and budgets see it). It has two halves:

- **the hands** (``SearchResearcher``, in the harness): turns the plan into tool calls — ``job_start`` /
  ``job_wait`` for trials, ``snapshot_publish``, ``submit_predictions``, ``forum_post`` / ``forum_read`` /
  ``forum_reply``, ``snapshot_fetch`` — and hands each call's result back to the brain. It keeps no state of
  its own: every step is computed from the conversation's last turns.
- **the brain** (``SearchDriver``, run in the agent's own sandbox as ``python -m aarlab.team._search plan``):
  an Optuna study (TPE sampler) over the configurable method's knobs (``aarlab.w2s.methods.configurable``),
  persisted in the workspace (``search/study.db``, Optuna's RDB storage on SQLite, plus
  ``search/state.json``), so ``aarlab resume`` continues the same study. Successive halving (Optuna's
  ``SuccessiveHalvingPruner``) decides which configs go on.

The research loop, per trial: a cheap run (one seed, a third of the training slice) scored by a label-free
proxy; the pruner promotes the best third to three seeds on the whole training slice (the study's value);
of those it promotes again, the configs that beat this researcher's best submitted one (and the vanilla
control) are published as a snapshot (``config.json`` and an entry point), the entry point itself is run
for three seeds on the task, and those predictions go in one multi-seed submission under the lab's budget,
posted as a ``result`` with the lab's own reply (mean ± seed SE, test SE). Only these final runs predict the
test set: every earlier run predicts the held-aside slice alone. Configs cut on the way are posted as
negative results. It reads the forum, fetches the snapshots of other researchers' result posts, runs their
``config.json`` as trials and replies with what it found. Each direction seeds its own region of the space
(``DIRECTION_SEEDS``).

The objective is computable without any label the agent lacks: **agreement with the weak teacher's confident
labels on a held-aside slice of ``train_unlabel``** (20%, never trained on; per weak-predicted class, the half
where the teacher is most confident — the labels most likely to be right). Submissions (coarse public PGR,
budget-limited) validate the promoted configs but do not steer the sampler: they are too coarse and too few.
See docs/search.md for the choices and their known bias.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from aarlab.team._search_lab import LabActions
from aarlab.team._search_space import (
    ASIDE_SHARE,
    CHEAP,
    CHEAP_STEP,
    DEFAULT_OPTIONS,
    DIRECTION_SEEDS,
    FINAL,
    FULL_STEP,
    PLAN_LINE,
    REDUCTION,
    SEARCH_DIR,
    SEED,
    SEEDS,
    VANILLA_POINT,
    _mean_se,
    _write_json,
    knobs_of,
    suggest,
)

# Until a kind of job has been timed here, how long it is expected to run relative to the others (seconds).
_TYPICAL_S = {CHEAP: 30.0, SEED: 60.0, FINAL: 150.0}


class SearchDriver(LabActions):
    """The search's brain, run in the sandbox with the workspace as cwd: ingests the last tool results,
    advances the study, and returns the next tool calls (``plan``)."""

    def __init__(self, root: Path | str = "."):
        self.root = Path(root)
        self.dir = self.root / SEARCH_DIR
        self.state_path = self.dir / "state.json"
        self.state: dict[str, Any] = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self._study = None

    # ---- setup
    def init(self, name: str, direction: str, task_dir: str, options: dict[str, Any]) -> None:
        """First plan: hold a slice aside, write the trials' data dir, seed the study with the direction."""
        if self.state:
            return
        import numpy as np

        from aarlab.w2s.methods.confident import confident_mask
        from aarlab.w2s.models import get_model
        from aarlab.w2s.taskdir import TaskInfo, read_jsonl

        task = Path(task_dir)
        info = TaskInfo.model_validate_json((task / "task.json").read_text())
        rows = read_jsonl(task / "train_unlabel.jsonl")
        n_test = sum(1 for line in (task / "test.jsonl").read_text().splitlines() if line.strip())
        n_aside = max(4, int(round(ASIDE_SHARE * len(rows))))
        aside = sorted(np.random.default_rng(zlib.crc32(f"aside:{name}".encode())).choice(
            len(rows), size=n_aside, replace=False).tolist())
        aside_set = set(aside)
        train = [r for i, r in enumerate(rows) if i not in aside_set]
        held = [rows[i] for i in aside]
        soft = np.asarray([r["weak_soft_label"] for r in held], dtype=np.float32)
        confident = confident_mask(soft, 0.5, None)
        # The trials' data dir: train on the other 80%, "test" on the held-aside inputs only. Predicting the
        # lab's test set is left to the final runs of configs that will be submitted: on the embedded default
        # it costs more than training does.
        out = self.dir / "data" / "proxy"
        out.mkdir(parents=True, exist_ok=True)
        (out / "task.json").write_text((task / "task.json").read_text())
        (out / "train_unlabel.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
        (out / "test.jsonl").write_text("".join(
            json.dumps({k: v for k, v in r.items() if k != "weak_soft_label"}) + "\n" for r in held))
        model = get_model(info.strong_model, info.label_space,
                          **info.extra.get("model_overrides", {}).get(info.strong_model, {}))
        config = getattr(model, "config", None)
        defaults = {"lr": getattr(config, "lr", 1e-4), "epochs": getattr(config, "epochs", 1.0),
                    "batch_size": getattr(config, "batch_size", 16)}
        self.state = {
            "name": name, "direction": direction, "options": {**DEFAULT_OPTIONS, **options}, "defaults": defaults,
            "task_dir": str(task), "n_test": n_test, "n_aside": n_aside, "aside_weak": soft.argmax(axis=1).tolist(),
            "aside_confident": confident.tolist(), "slots": None, "aid": 0, "plans": 0, "actions": {},
            "trials": {}, "rungs": [], "submissions_left": None, "submissions_made": 0, "seen_posts": [],
            "imported": {}, "negatives": [], "finished": False, "created": time.time(),
        }
        study = self.study()
        # skip_if_exists: a first plan killed before it saved its state is run again and must not seed twice.
        # The point is kept in the user attrs too: a trial asked but never suggested has no params to re-enqueue.
        points = [("vanilla control", dict(VANILLA_POINT))]
        points += [(f"{direction} seed", {**VANILLA_POINT, **point}) for point in DIRECTION_SEEDS.get(direction, [])]
        for origin, point in points:
            study.enqueue_trial(point, user_attrs={"origin": origin, "point": point}, skip_if_exists=True)
        self.save()

    def study(self):
        """The persistent study (TPE sampler on the workspace's SQLite file), opened once per plan and only
        by a plan that needs it (opening it is most of a plan's time)."""
        if self._study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            # Seeded per plan: every plan is a fresh process, and one seed for all of them would draw the
            # same random start-up point every time.
            seed = zlib.crc32(f"{self.state['name']}:{self.state['direction']}:{self.state['plans']}".encode())
            self._study = optuna.create_study(
                storage=optuna.storages.RDBStorage(f"sqlite:///{(self.dir / 'study.db').resolve()}"),
                study_name="search", direction="maximize", load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=4))
        return self._study

    def save(self) -> None:
        _write_json(self.state_path, self.state)

    # ---- one plan
    def plan(self, inbox: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Take in the results of the last actions, advance the trials, and return the next tool calls."""
        self.state["plans"] += 1
        marker = self.dir / "planning"
        if marker.exists():  # the last plan died before it saved: the study may hold a trial asked for by it
            self._drop_orphans()
        marker.touch()
        self._ingest(inbox or {})
        self._collect_jobs()
        actions: list[dict[str, Any]] = []
        if not self.state["finished"]:
            actions += self._lab_actions()
            actions += self._fill_slots()
            running = self._running()
            if running and self.state["slots"] is not None and not self.state.get("reconcile"):
                # Every slot is busy now: wait in the same batch for the first job to end, rather than
                # spending a plan (a process in the sandbox) on asking for the wait.
                actions.append(self._action("job_wait", {"names": [self._next_to_end(running)],
                                                         "timeout": self.state["options"]["wait_s"]}))
            if not actions and not running and self._exhausted() and not self._active():
                if self.state["negatives"]:
                    actions.append(self._negatives_post())
                else:
                    self.state["finished"] = True
            if not actions and not self.state["finished"]:
                # Nothing to do but wait (a submission waiting for the hourly budget): pause, then look again.
                actions.append(self._action("bash", {"command": "sleep 30; echo paused"}))
        if self.state["finished"]:
            self._close_study()
            actions = [self._action("leaderboard", {}),
                       self._action("finish", {"summary": self._summary()})]
        self.save()
        marker.unlink()
        return actions

    def _drop_orphans(self) -> None:
        """A plan killed after asking the study for a trial but before saving ``state.json`` left that trial
        running in the study and unknown here: it is marked failed, and the search asks for another. An
        enqueued point (the control, a direction's seed, another researcher's config) is enqueued again."""
        import optuna

        study = self.study()
        known = {int(n) for n in self.state["trials"]}
        trials = study.get_trials(deepcopy=False)
        waiting = [t.user_attrs for t in trials if t.state == optuna.trial.TrialState.WAITING]
        for frozen in trials:
            if frozen.state != optuna.trial.TrialState.RUNNING or frozen.number in known:
                continue
            if "origin" in frozen.user_attrs and frozen.user_attrs not in waiting:
                study.enqueue_trial(frozen.user_attrs.get("point", {}), user_attrs=frozen.user_attrs)
            study.tell(frozen.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)

    def _close_study(self) -> None:
        """A finished search leaves no trial running in its study: one still open (its plan or its jobs were cut
        short by a crash, and the search ended before it was told) is told failed, so the study says what ran."""
        import optuna

        for frozen in self.study().get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            self.study().tell(frozen.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)

    def _action(self, tool: str, arguments: dict[str, Any], **memo: Any) -> dict[str, Any]:
        self.state["aid"] += 1
        aid = f"a{self.state['aid']}"
        self.state["actions"][aid] = {"tool": tool, "plan": self.state["plans"], **memo}
        return {"aid": aid, "tool": tool, "arguments": arguments}

    # ---- results of the last actions
    def _running(self) -> list[str]:
        return [name for t in self.state["trials"].values() for name, job in t["jobs"].items()
                if job["state"] in ("starting", "running")]

    def _next_to_end(self, running: list[str]) -> str:
        """The running job expected to end first: ``job_wait`` waits for all the jobs it names, and a slot
        that frees up early should not sit idle until a long final run ends."""
        jobs = {name: job for t in self.state["trials"].values() for name, job in t["jobs"].items()}
        took: dict[str, list[float]] = {}
        for job in jobs.values():
            if "took_s" in job:
                took.setdefault(job["kind"], []).append(job["took_s"])

        def expected_end(name: str) -> float:
            job = jobs[name]
            typical = took.get(job["kind"])
            return job.get("started", 0.0) + (sum(typical) / len(typical) if typical else _TYPICAL_S[job["kind"]])

        return min(running, key=expected_end)

    def _job_failed(self, name: str, why: str) -> None:
        for trial in self.state["trials"].values():
            job = trial["jobs"].get(name)
            if job is not None and job["state"] in ("starting", "running"):
                if not (self.root / job["rc"]).is_file():
                    job["state"], job["why"] = "failed", why

    def _collect_jobs(self) -> None:
        for number, trial in self.state["trials"].items():
            for job in trial["jobs"].values():
                if job["state"] in ("starting", "running") and (self.root / job["rc"]).is_file():
                    rc = (self.root / job["rc"]).read_text().strip()
                    ok = rc == "0" and (self.root / job["out"]).is_file()
                    job["state"] = "done" if ok else "failed"
                    if ok:
                        job["took_s"] = round(time.time() - job.get("started", time.time()), 1)
                        if job["kind"] != FINAL:
                            job["proxy"] = self._proxy(job["out"])
                    else:
                        job["why"] = f"exit code {rc}"
            self._advance(int(number), trial)

    def _proxy(self, out: str) -> float:
        predictions = json.loads((self.root / out).read_text())
        held = predictions[-self.state["n_aside"]:]
        pairs = [(p, w) for p, w, c in zip(held, self.state["aside_weak"], self.state["aside_confident"],
                                           strict=True) if c]
        return sum(p == w for p, w in pairs) / max(1, len(pairs))

    def _queue_job(self, number: int, trial: dict[str, Any], kind: str, seed: int) -> None:
        attempt = sum(1 for j in trial["jobs"].values() if j["kind"] == kind and j["seed"] == seed)
        name = f"t{number}-{kind}{seed}" + (f"-r{attempt}" if attempt else "")
        out = f"{SEARCH_DIR}/runs/{name}.json"
        trial["jobs"][name] = {"kind": kind, "seed": seed, "state": "queued", "out": out,
                               "rc": f"{SEARCH_DIR}/runs/{name}.rc", "attempt": attempt}

    def _job_command(self, number: int, name: str, job: dict[str, Any]) -> str:
        head = f"mkdir -p {SEARCH_DIR}/runs && OMP_NUM_THREADS=${{OMP_NUM_THREADS:-1}}"
        tail = f"--out {job['out']} --seed {job['seed']}; echo $? > {job['rc']}"
        if job["kind"] == FINAL:
            # The published entry point itself, on the task as the verifier will run it: what is submitted
            # is exactly what the snapshot produces.
            snap = f"{SEARCH_DIR}/snap/t{number}"
            return (f"{head} PYTHONPATH={snap}${{PYTHONPATH:+:$PYTHONPATH}} python -m {self._entry_module(number)} "
                    f"--data-dir {self.state['task_dir']} {tail}")
        config = f"{SEARCH_DIR}/trials/t{number}/{'cheap' if job['kind'] == CHEAP else 'config'}.json"
        return (f"{head} python -m aarlab.w2s.methods.configurable --data-dir {SEARCH_DIR}/data/proxy "
                f"--config {config} {tail}")

    def _fill_slots(self) -> list[dict[str, Any]]:
        slots = self.state["slots"]
        if slots is None or self.state.get("reconcile"):
            return [self._action("job_list", {})]
        free = slots - len(self._running())
        actions: list[dict[str, Any]] = []
        # Exploit first: final runs of configs to submit, then promoted configs' seeds, then new cheap runs.
        order = {FINAL: 0, SEED: 1, CHEAP: 2}
        queued = sorted((order[job["kind"]], int(n), name) for n, t in self.state["trials"].items()
                        for name, job in t["jobs"].items() if job["state"] == "queued")
        for _, number, name in queued:
            if free <= 0:
                break
            actions.append(self._start(number, name))
            free -= 1
        while free > 0 and not self._exhausted():
            number, trial = self._new_trial()
            actions.append(self._start(number, next(iter(trial["jobs"]))))
            free -= 1
        return actions

    def _start(self, number: int, name: str) -> dict[str, Any]:
        job = self.state["trials"][str(number)]["jobs"][name]
        job["state"], job["started"] = "starting", time.time()
        return self._action("job_start", {"name": name, "command": self._job_command(number, name, job),
                                          "timeout": self.state["options"]["job_timeout_s"]}, trial=number, job=name)

    def _exhausted(self) -> bool:
        """Every trial the options allow has been started."""
        limit = self.state["options"]["max_trials"]
        return limit is not None and len(self.state["trials"]) >= limit

    def _active(self) -> bool:
        return any(t["stage"] not in ("done", "pruned", "failed") for t in self.state["trials"].values())

    def _new_trial(self) -> tuple[int, dict[str, Any]]:
        trial = self.study().ask()
        attrs = trial.user_attrs
        if "knobs" in attrs:  # another researcher's config: reproduce it at full strength
            params, knobs = {}, dict(attrs["knobs"])
        else:
            params = suggest(trial)
            knobs = knobs_of(params, self.state["defaults"])
        record = {"params": params, "knobs": knobs, "stage": "cheap", "jobs": {},
                  "origin": attrs.get("origin", "TPE"), "source_post": attrs.get("source_post"),
                  "source_snapshot": attrs.get("source_snapshot"), "started": time.time()}
        tdir = self.dir / "trials" / f"t{trial.number}"
        _write_json(tdir / "config.json", knobs)
        _write_json(tdir / "cheap.json", {**knobs, "subsample": self.state["options"]["cheap_subsample"]})
        if record["source_post"] is not None:
            record["stage"] = "seeds"
            for seed in SEEDS:
                self._queue_job(trial.number, record, SEED, seed)
        else:
            self._queue_job(trial.number, record, CHEAP, SEEDS[0])
        self.state["trials"][str(trial.number)] = record
        return trial.number, record

    # ---- the study's rungs
    def _promoted(self, number: int, step: int, value: float) -> bool:
        """Successive halving's verdict on ``value`` reported at ``step`` (Optuna's pruner, at reduction
        factor 3): does the trial go on to the next rung?

        The pruner judges live trials, and a live trial does not outlive the plan that asked for it. So the
        verdict is replayed: an in-memory study reports every earlier rung value (``state["rungs"]``, in the
        order they were judged), then this one. It is a pure function of the saved state, so a plan killed
        after telling the study and re-run reaches the same verdict, and it uses Optuna's public API only.
        """
        import optuna

        ladder = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                     pruner=optuna.pruners.SuccessiveHalvingPruner(
                                         min_resource=CHEAP_STEP, reduction_factor=REDUCTION))
        live: dict[int, Any] = {}
        verdict = True
        for n, s, v in [*self.state["rungs"], [number, step, value]]:
            if n not in live:
                live[n] = ladder.ask()
            live[n].report(v, s)
            verdict = not live[n].should_prune()
        self.state["rungs"].append([number, step, value])
        return verdict

    def _tell(self, number: int, value: float | None = None, state: str | None = None) -> None:
        """Tell the persistent study a trial's outcome; one told before a kill stays as it was told."""
        import optuna

        self.study().tell(number, value, state=getattr(optuna.trial.TrialState, state) if state else None,
                          skip_if_finished=True)

    def _worth_submitting(self, number: int, trial: dict[str, Any]) -> bool:
        """The control (what every result is read against), and a config whose proxy beats every config this
        researcher has already submitted: a submission costs three final runs and the verifier's three."""
        if trial["origin"] == "vanilla control":
            return True
        submitted = [t["proxy"]["mean"] for n, t in self.state["trials"].items()
                     if int(n) != number and t.get("to_submit") and t.get("proxy")]
        return not submitted or trial["proxy"]["mean"] > max(submitted)

    def _seeds_outcome(self, number: int, trial: dict[str, Any], kind: str) -> str:
        """``done`` when every seed of ``kind`` ran; ``retrying`` when a seed that failed once is queued again;
        ``failed`` when one failed twice."""
        runs = [j for j in trial["jobs"].values() if j["kind"] == kind]
        missing = [s for s in SEEDS if not any(j["seed"] == s and j["state"] == "done" for j in runs)]
        if not missing:
            return "done"
        if any(sum(1 for j in runs if j["seed"] == s) >= 2 for s in missing):
            return "failed"
        for seed in missing:
            self._queue_job(number, trial, kind, seed)
        return "retrying"

    def _advance(self, number: int, trial: dict[str, Any]) -> None:
        jobs = trial["jobs"].values()
        if trial["stage"] == "cheap":
            cheap = [j for j in jobs if j["kind"] == CHEAP]
            if any(j["state"] == "done" for j in cheap):
                value = next(j["proxy"] for j in cheap if j["state"] == "done")
                trial["cheap_proxy"] = value
                # The control goes on whatever its rank (every result is read against it); its value still
                # counts on the ladder.
                if self._promoted(number, CHEAP_STEP, value) or trial["origin"] == "vanilla control":
                    trial["stage"] = "seeds"
                    for seed in SEEDS:
                        self._queue_job(number, trial, SEED, seed)
                else:
                    self._tell(number, state="PRUNED")
                    trial["stage"], trial["cut"] = "pruned", "cut at the first rung"
                    self.state["negatives"].append(number)
            elif cheap and all(j["state"] == "failed" for j in cheap):
                if len(cheap) < 2:
                    self._queue_job(number, trial, CHEAP, SEEDS[0])
                else:
                    self._tell(number, state="FAIL")
                    trial["stage"] = "failed"
        elif trial["stage"] == "seeds":
            seeds = [j for j in jobs if j["kind"] == SEED]
            if any(j["state"] in ("queued", "starting", "running") for j in seeds):
                return
            outcome = self._seeds_outcome(number, trial, SEED)
            if outcome == "failed":
                self._tell(number, state="FAIL")
                trial["stage"] = "failed"
            if outcome != "done":
                return
            mean, se = _mean_se([j["proxy"] for j in seeds if j["state"] == "done"])
            trial["proxy"] = {"mean": mean, "se": se, "n": len(SEEDS)}
            imported = trial.get("source_post") is not None
            # Another researcher's config is reproduced whatever its rank; it is not on this study's ladder.
            promoted = imported or self._promoted(number, FULL_STEP, mean) or trial["origin"] == "vanilla control"
            self._tell(number, mean)
            if not promoted:
                trial["stage"], trial["cut"] = "pruned", "cut after three seeds"
                self.state["negatives"].append(number)
            elif not self._worth_submitting(number, trial):
                trial["note"] = "promoted, but not above the best config already submitted"
                if imported:
                    trial["stage"] = "reply"
                else:
                    trial["stage"], trial["cut"] = "pruned", "not above my best submitted config"
                    self.state["negatives"].append(number)
            elif not self._budget_ok():
                trial["stage"], trial["note"] = ("reply" if imported else "done"), \
                    "not submitted: the submission budget is spent"
            else:
                trial["to_submit"] = True
                trial["stage"] = "final"
                self._write_snapshot(number, trial)
                for seed in SEEDS:
                    self._queue_job(number, trial, FINAL, seed)
        elif trial["stage"] == "final":
            finals = [j for j in jobs if j["kind"] == FINAL]
            if any(j["state"] in ("queued", "starting", "running") for j in finals):
                return
            outcome = self._seeds_outcome(number, trial, FINAL)
            if outcome == "done":
                trial["stage"] = "publish"
            elif outcome == "failed":
                trial["stage"] = "reply" if trial.get("source_post") is not None else "done"
                trial["note"] = "not submitted: the entry point's runs failed"

    # ---- the lab: snapshots, submissions, posts, the forum
# ------------------------------------------------------------------------------------------------ in the sandbox
def main(argv: list[str] | None = None) -> None:
    """``python -m aarlab.team._search plan [--inbox F] [--name N --direction D --task-dir T --options JSON]``:
    one planning step of the brain, run in the workspace; prints ``PLAN <json list of tool calls>``."""
    parser = argparse.ArgumentParser(prog="python -m aarlab.team._search", description=main.__doc__)
    parser.add_argument("command", choices=["plan"])
    parser.add_argument("--inbox", default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--direction", default="general")
    parser.add_argument("--task-dir", default="/task")
    parser.add_argument("--options", default="{}")
    args = parser.parse_args(argv)
    driver = SearchDriver(".")
    if not driver.state:
        if not args.name:
            sys.exit("error: the first plan needs --name (from README.md)")
        driver.init(args.name, args.direction, args.task_dir, json.loads(args.options))
    inbox = json.loads(Path(args.inbox).read_text()) if args.inbox else None
    actions = driver.plan(inbox)
    print(PLAN_LINE + json.dumps(actions))
    trials = driver.state["trials"]
    stages: dict[str, int] = {}
    for t in trials.values():
        stages[t["stage"]] = stages.get(t["stage"], 0) + 1
    best = driver._best()
    print(f"{len(trials)} trials ({', '.join(f'{k} {v}' for k, v in sorted(stages.items()))}); "
          f"submissions made {driver.state['submissions_made']}"
          + (f"; best t{best[0]} proxy {best[1]['proxy']['mean']:.3f} ± {best[1]['proxy']['se']:.3f}" if best else ""))


if __name__ == "__main__":
    main()

__all__ = ["DIRECTION_SEEDS", "SearchDriver", "knobs_of", "suggest"]
