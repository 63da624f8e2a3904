"""The ``search`` researcher: a non-LLM agent that does real, narrow research through the lab's own tools.

``scripted:search`` is a model whose every action is a real tool call of the agent loop (so transcripts,
monitors and budgets see it). It has two halves:

- **the hands** (``SearchResearcher``, in the harness): turns the plan into tool calls — ``job_start`` /
  ``job_wait`` for trials, ``snapshot_publish``, ``submit_predictions``, ``forum_post`` / ``forum_read`` /
  ``forum_reply``, ``snapshot_fetch`` — and hands each call's result back to the brain. It keeps no state of
  its own: every step is computed from the conversation's last turns.
- **the brain** (``SearchDriver``, run in the agent's own sandbox as ``python -m aarlab.team._search plan``):
  an Optuna study (TPE sampler, successive-halving pruner) over the configurable method's knobs
  (``aarlab.w2s.methods.configurable``), persisted in the workspace (``search/study.db``, Optuna's RDB
  storage on SQLite, plus ``search/state.json``), so ``aarlab resume`` continues the same study.

The research loop, per trial: a cheap run (one seed, a subsample of the training data) scored by a label-free
proxy; the successive-halving pruner promotes the best third to three seeds on the full training data; the
promising three-seed configs (again the top third) are published as a snapshot (``config.json`` and an entry
point), submitted in one multi-seed submission under the lab's budget, and posted as a ``result`` with the
lab's own reply (mean ± seed SE, test SE). Configs cut at three seeds are posted as negative results. It reads
the forum, fetches the snapshots of other researchers' result posts, runs their ``config.json`` as trials and
replies with what it found. Each direction seeds its own region of the space (``DIRECTION_SEEDS``).

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
    CHEAP_STEP,
    DEFAULT_OPTIONS,
    DIRECTION_SEEDS,
    FULL_STEP,
    PLAN_LINE,
    REDUCTION,
    SEARCH_DIR,
    SEEDS,
    VANILLA_POINT,
    _mean_se,
    _write_json,
    knobs_of,
    suggest,
)


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
        """First plan: hold a slice aside, write the trial data dirs, seed the study with the direction."""
        if self.state:
            return
        import numpy as np

        from aarlab.w2s.methods.confident import confident_mask
        from aarlab.w2s.models import get_model
        from aarlab.w2s.taskdir import TaskInfo, read_jsonl

        task = Path(task_dir)
        info = TaskInfo.model_validate_json((task / "task.json").read_text())
        rows = read_jsonl(task / "train_unlabel.jsonl")
        test = read_jsonl(task / "test.jsonl")
        n_aside = max(4, int(round(ASIDE_SHARE * len(rows))))
        aside = sorted(np.random.default_rng(zlib.crc32(f"aside:{name}".encode())).choice(
            len(rows), size=n_aside, replace=False).tolist())
        aside_set = set(aside)
        train = [r for i, r in enumerate(rows) if i not in aside_set]
        held = [rows[i] for i in aside]
        soft = np.asarray([r["weak_soft_label"] for r in held], dtype=np.float32)
        confident = confident_mask(soft, 0.5, None)
        held_inputs = [{k: v for k, v in r.items() if k != "weak_soft_label"} for r in held]
        for sub, test_rows in (("cheap", held_inputs), ("full", test + held_inputs)):
            out = self.dir / "data" / sub
            out.mkdir(parents=True, exist_ok=True)
            (out / "task.json").write_text((task / "task.json").read_text())
            (out / "train_unlabel.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
            (out / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test_rows))
        model = get_model(info.strong_model, info.label_space,
                          **info.extra.get("model_overrides", {}).get(info.strong_model, {}))
        config = getattr(model, "config", None)
        defaults = {"lr": getattr(config, "lr", 1e-4), "epochs": getattr(config, "epochs", 1.0),
                    "batch_size": getattr(config, "batch_size", 16)}
        self.state = {
            "name": name, "direction": direction, "options": {**DEFAULT_OPTIONS, **options}, "defaults": defaults,
            "n_test": len(test), "n_aside": n_aside, "aside_weak": soft.argmax(axis=1).tolist(),
            "aside_confident": confident.tolist(), "slots": None, "aid": 0, "plans": 0, "actions": {},
            "trials": {}, "submissions_left": None, "submissions_made": 0, "seen_posts": [], "imported": {},
            "negatives": [], "finished": False, "created": time.time(),
        }
        study = self.study()
        # skip_if_exists: a first plan killed before it saved its state is run again and must not seed twice.
        study.enqueue_trial(dict(VANILLA_POINT), user_attrs={"origin": "vanilla control"}, skip_if_exists=True)
        for point in DIRECTION_SEEDS.get(direction, []):
            study.enqueue_trial({**VANILLA_POINT, **point}, user_attrs={"origin": f"{direction} seed"},
                                skip_if_exists=True)
        self.save()

    def study(self):
        if self._study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            seed = zlib.crc32(f"{self.state['name']}:{self.state['direction']}".encode())
            self._study = optuna.create_study(
                storage=f"sqlite:///{(self.dir / 'study.db').resolve()}", study_name="search",
                direction="maximize", load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=4),
                pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=CHEAP_STEP, reduction_factor=REDUCTION))
        return self._study

    def save(self) -> None:
        _write_json(self.state_path, self.state)

    # ---- one plan
    def plan(self, inbox: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Take in the results of the last actions, advance the trials, and return the next tool calls."""
        self.state["plans"] += 1
        self._drop_orphans()
        self._ingest(inbox or {})
        self._collect_jobs()
        actions: list[dict[str, Any]] = []
        if not self.state["finished"]:
            actions += self._lab_actions()
            actions += self._fill_slots()
            running = [j for t in self.state["trials"].values() for j, job in t["jobs"].items()
                       if job["state"] in ("starting", "running")]
            if running and not actions:
                actions.append(self._action("job_wait", {"names": running, "timeout": self.state["options"]["wait_s"]}))
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
        return actions

    def _drop_orphans(self) -> None:
        """A plan killed after asking the study for a trial but before saving ``state.json`` left that trial
        running in the study and unknown here: it is marked failed, and the search asks for another."""
        import optuna

        known = {t["id"] for t in self.state["trials"].values()}
        for frozen in self.study().get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if frozen._trial_id not in known:
                self.study().tell(frozen.number, state=optuna.trial.TrialState.FAIL)

    def _close_study(self) -> None:
        """A finished search leaves no trial running in its study: one still open (its plan or its jobs were cut
        short by a crash, and the search ended before it was told) is told failed, so the study says what ran."""
        import optuna

        for frozen in self.study().get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            self.study().tell(frozen.number, state=optuna.trial.TrialState.FAIL)

    def _action(self, tool: str, arguments: dict[str, Any], **memo: Any) -> dict[str, Any]:
        self.state["aid"] += 1
        aid = f"a{self.state['aid']}"
        self.state["actions"][aid] = {"tool": tool, "plan": self.state["plans"], **memo}
        return {"aid": aid, "tool": tool, "arguments": arguments}

    # ---- results of the last actions
    def _running(self) -> list[str]:
        return [name for t in self.state["trials"].values() for name, job in t["jobs"].items()
                if job["state"] in ("starting", "running")]

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
        data = "cheap" if kind == "c" else "full"
        out = f"{SEARCH_DIR}/runs/{name}.json"
        trial["jobs"][name] = {"kind": kind, "seed": seed, "state": "queued", "out": out,
                               "rc": f"{SEARCH_DIR}/runs/{name}.rc", "data": data, "attempt": attempt}

    def _job_command(self, number: int, name: str, job: dict[str, Any]) -> str:
        config = f"{SEARCH_DIR}/trials/t{number}/{'cheap' if job['kind'] == 'c' else 'config'}.json"
        return (f"mkdir -p {SEARCH_DIR}/runs && OMP_NUM_THREADS=${{OMP_NUM_THREADS:-1}} python -m "
                f"aarlab.w2s.methods.configurable --data-dir {SEARCH_DIR}/data/{job['data']} --out {job['out']} "
                f"--seed {job['seed']} --config {config}; echo $? > {job['rc']}")

    def _fill_slots(self) -> list[dict[str, Any]]:
        slots = self.state["slots"]
        if slots is None or self.state.get("reconcile"):
            return [self._action("job_list", {})]
        free = slots - len(self._running())
        actions: list[dict[str, Any]] = []
        # Exploit first: promoted configs' seeds, then the cheap runs of new trials.
        queued = sorted(((0 if job["kind"] == "s" else 1, int(n), name) for n, t in self.state["trials"].items()
                         for name, job in t["jobs"].items() if job["state"] == "queued"))
        for _, number, name in queued:
            if free <= 0:
                break
            job = self.state["trials"][str(number)]["jobs"][name]
            job["state"], job["started"] = "starting", time.time()
            actions.append(self._action("job_start", {"name": name, "command": self._job_command(number, name, job),
                                                      "timeout": self.state["options"]["job_timeout_s"]},
                                        trial=number, job=name))
            free -= 1
        while free > 0 and not self._exhausted():
            number, trial = self._new_trial()
            name = next(iter(trial["jobs"]))
            job = trial["jobs"][name]
            job["state"], job["started"] = "starting", time.time()
            actions.append(self._action("job_start", {"name": name, "command": self._job_command(number, name, job),
                                                      "timeout": self.state["options"]["job_timeout_s"]},
                                        trial=number, job=name))
            free -= 1
        return actions

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
        record = {"id": trial._trial_id, "params": params, "knobs": knobs, "stage": "cheap", "jobs": {},
                  "origin": attrs.get("origin", "TPE"), "source_post": attrs.get("source_post"),
                  "source_snapshot": attrs.get("source_snapshot"), "started": time.time()}
        tdir = self.dir / "trials" / f"t{trial.number}"
        _write_json(tdir / "config.json", knobs)
        _write_json(tdir / "cheap.json", {**knobs, "subsample": self.state["options"]["cheap_subsample"]})
        if record["source_post"] is not None:
            record["stage"] = "seeds"
            for seed in SEEDS:
                self._queue_job(trial.number, record, "s", seed)
        else:
            self._queue_job(trial.number, record, "c", SEEDS[0])
        self.state["trials"][str(trial.number)] = record
        return trial.number, record

    # ---- the study's rungs
    def _live_trial(self, trial: dict[str, Any]):
        import optuna

        return optuna.trial.Trial(self.study(), trial["id"])

    def _told(self, trial: dict[str, Any]):
        """The study's record of a trial if it is already told: a plan killed after telling the study but
        before saving ``state.json`` is re-played by the next one, which must adopt the told outcome."""
        frozen = self.study()._storage.get_trial(trial["id"])
        return frozen if frozen.state.is_finished() else None

    def _advance(self, number: int, trial: dict[str, Any]) -> None:
        import optuna

        jobs = trial["jobs"].values()
        if trial["stage"] == "cheap":
            cheap = [j for j in jobs if j["kind"] == "c"]
            if any(j["state"] == "done" for j in cheap):
                value = next(j["proxy"] for j in cheap if j["state"] == "done")
                trial["cheap_proxy"] = value
                told = self._told(trial)
                if told is None:
                    live = self._live_trial(trial)
                    live.report(value, CHEAP_STEP)
                    pruned = live.should_prune()
                else:
                    pruned = told.state == optuna.trial.TrialState.PRUNED
                if pruned:
                    if told is None:
                        self.study().tell(number, state=optuna.trial.TrialState.PRUNED)
                    trial["stage"] = "pruned"
                    self.state["negatives"].append(number)
                else:
                    trial["stage"] = "seeds"
                    for seed in SEEDS:
                        self._queue_job(number, trial, "s", seed)
            elif cheap and all(j["state"] == "failed" for j in cheap):
                if len(cheap) < 2:
                    self._queue_job(number, trial, "c", SEEDS[0])
                else:
                    if self._told(trial) is None:
                        self.study().tell(number, state=optuna.trial.TrialState.FAIL)
                    trial["stage"] = "failed"
        elif trial["stage"] == "seeds":
            seeds = [j for j in jobs if j["kind"] == "s"]
            if any(j["state"] in ("queued", "starting", "running") for j in seeds):
                return
            done = [j for j in seeds if j["state"] == "done"]
            missing = [s for s in SEEDS if not any(j["seed"] == s and j["state"] == "done" for j in seeds)]
            retryable = [s for s in missing if sum(1 for j in seeds if j["seed"] == s) < 2]
            if missing and retryable:
                for seed in retryable:
                    self._queue_job(number, trial, "s", seed)
                return
            if len(done) < len(SEEDS):
                if self._told(trial) is None:
                    self.study().tell(number, state=optuna.trial.TrialState.FAIL)
                trial["stage"] = "failed"
                return
            mean, se = _mean_se([j["proxy"] for j in done])
            trial["proxy"] = {"mean": mean, "se": se, "n": len(done)}
            imported = trial.get("source_post") is not None
            told = self._told(trial)
            promoted = True
            if told is not None:  # told before a kill: the pruner's verdict was kept as the user attr "cut"
                promoted = imported or not told.user_attrs.get("cut")
            elif not imported:
                live = self._live_trial(trial)
                live.report(mean, FULL_STEP)
                promoted = not live.should_prune()
                if not promoted:
                    live.set_user_attr("cut", True)
            if told is None:
                self.study().tell(number, mean)
            if promoted or imported:
                trial["stage"] = "publish"
            else:
                trial["stage"] = "pruned"
                self.state["negatives"].append(number)

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
