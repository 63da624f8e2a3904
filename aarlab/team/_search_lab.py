"""The search researcher's dealings with the lab (a mixin of ``SearchDriver``): reading the results of its tool
calls (jobs, snapshots, submissions, forum), and choosing what to publish, submit, post and reply."""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from aarlab.team._demo import PGR_GRID, pm_grid
from aarlab.team._search_space import (
    BUDGET_LEFT,
    FINAL,
    JOB_LINE,
    LOST_JOB,
    POST_HEAD,
    SEARCH_DIR,
    SLOTS,
    SUBMIT_REPLY,
    WRAPPER,
    _describe,
    _write_json,
)


class LabActions:
    """What ``SearchDriver`` does with the lab; its state and study live on the driver."""

    def _ingest(self, inbox: dict[str, Any]) -> None:
        for text in inbox.get("notes", []):
            for name in LOST_JOB.findall(text):
                self._job_failed(name, "lost in a restart")
        for aid, result in inbox.get("results", {}).items():
            action = self.state["actions"].pop(aid, None)
            if action is None:
                continue
            content, is_error = str(result.get("content", "")), bool(result.get("is_error"))
            interrupted = content.startswith("This tool call was interrupted")
            for name in LOST_JOB.findall(content):
                self._job_failed(name, "lost in a restart")
            if m := SLOTS.search(content):
                self.state["slots"] = int(m.group(2) or m.group(4))
            handler = getattr(self, f"_on_{action['tool']}", None)
            if handler is not None:
                handler(action, content, is_error or interrupted, interrupted)
        # An action whose result never came back (the harness died before the turn was recorded) is treated
        # as interrupted: a submission or a post is never sent twice.
        for aid in [a for a, act in self.state["actions"].items() if act["plan"] < self.state["plans"]]:
            action = self.state["actions"].pop(aid)
            handler = getattr(self, f"_on_{action['tool']}", None)
            if handler is not None:
                handler(action, "", True, True)

    def _trial(self, action: dict[str, Any]) -> dict[str, Any] | None:
        return self.state["trials"].get(str(action.get("trial")))

    def _on_job_start(self, action, content, failed, interrupted) -> None:
        trial = self._trial(action)
        if trial is None:
            return
        job = trial["jobs"].get(action["job"])
        if job is None:
            return
        if failed and not interrupted:
            job["state"] = "queued"  # refused (no free slot): start it again when one frees up
            if "slot" in content:
                self.state["slots"] = max(1, len(self._running()))
        else:
            job["state"] = "running"
            if interrupted:  # it may or may not have started: the job list will tell
                self.state["reconcile"] = True

    def _on_job_list(self, action, content, failed, interrupted) -> None:
        if failed:
            return
        self.state["reconcile"] = False
        listed = dict(JOB_LINE.findall(content))
        for name in self._running():
            state = listed.get(name)
            if state is None or state != "running":
                self._job_failed(name, state or "never started")

    def _on_job_wait(self, action, content, failed, interrupted) -> None:
        for name, state in JOB_LINE.findall(content):
            if state in ("killed", "timeout", "lost", "failed"):
                self._job_failed(name, state)

    def _on_snapshot_publish(self, action, content, failed, interrupted) -> None:
        trial = self._trial(action)
        if trial is None:
            return
        if m := re.search(r"published snapshot (\S+)", content):
            trial["snapshot"] = m.group(1)
            trial["stage"] = "submit"
        elif interrupted:
            trial["stage"] = "publish"  # publishing is idempotent (content-addressed): do it again
        else:
            trial["stage"], trial["note"] = "done", f"publish failed: {content[:200]}"

    def _on_submit_predictions(self, action, content, failed, interrupted) -> None:
        trial = self._trial(action)
        if trial is None:
            return
        if m := BUDGET_LEFT.search(content):
            self.state["submissions_left"] = [int(m.group(1)), int(m.group(2))]
        if m := SUBMIT_REPLY.search(content):
            self.state["submissions_made"] += 1
            trial["submission"] = {"id": int(m.group(1)), "seeds": int(m.group(2)), "accuracy": float(m.group(3)),
                                   "pgr": float(m.group(4)), "pgr_se": float(m.group(5) or 0.0),
                                   "test_se": float(m.group(6)), "time": time.time()}
            if g := PGR_GRID.search(content):
                trial["submission"]["pgr_step"] = float(g.group(1))
            trial["stage"] = "post"
        elif interrupted:
            # It may have counted: never sent again, and counted against the budget to be safe.
            self.state["submissions_made"] += 1
            trial["stage"], trial["note"] = "done", "submission interrupted by a restart; not repeated"
        elif "hourly submission budget" in content:
            trial["stage"], trial["retry_after"] = "submit", time.time() + 300
            if self.state["submissions_left"] is not None:
                self.state["submissions_left"][1] = 0
        else:
            trial["stage"], trial["note"] = "done", f"submission refused: {content[:200]}"

    def _on_forum_post(self, action, content, failed, interrupted) -> None:
        if action.get("negatives"):
            if not failed or interrupted:
                self.state["negatives"] = [n for n in self.state["negatives"] if n not in action["negatives"]]
            return
        trial = self._trial(action)
        if trial is None:
            return
        if m := re.search(r"posted #(\d+)", content):
            trial["post"] = int(m.group(1))
        elif not interrupted:
            trial["note"] = f"post refused: {content[:200]}"
        trial["stage"] = "reply" if trial.get("source_post") else "done"

    def _on_forum_reply(self, action, content, failed, interrupted) -> None:
        if (trial := self._trial(action)) is not None:
            trial["stage"] = "done"

    def _on_forum_read(self, action, content, failed, interrupted) -> None:
        seen = set(self.state["seen_posts"])
        for post_id, author, snapshot in POST_HEAD.findall(content):
            post_id = int(post_id)
            if post_id in seen or author == self.state["name"] or snapshot in self.state["imported"]:
                continue
            seen.add(post_id)
            self.state["imported"][snapshot] = {"post": post_id, "author": author, "state": "to-fetch"}
        self.state["seen_posts"] = sorted(seen)

    def _on_snapshot_fetch(self, action, content, failed, interrupted) -> None:
        entry = self.state["imported"].get(action["snapshot"])
        if entry is None:
            return
        config = self.root / action["dest"] / "config.json"
        if failed or not config.is_file():
            entry["state"] = "no config.json" if not failed else "fetch failed"
            return
        try:
            knobs = json.loads(config.read_text())
            from aarlab.w2s.methods.configurable import Knobs

            Knobs.model_validate(knobs)
        except (ValueError, OSError) as exc:
            entry["state"] = f"unreadable config.json: {str(exc)[:100]}"
            return
        same = next((n for n, t in self.state["trials"].items() if t["knobs"] == knobs), None)
        if same is not None:  # a config this search already ran (everyone runs the control): not again
            entry["state"] = f"same config as my trial {same}"
            return
        entry["state"] = "enqueued"
        self.study().enqueue_trial({}, user_attrs={"origin": f"post #{entry['post']} by {entry['author']}",
                                                   "knobs": knobs, "source_post": entry["post"],
                                                   "source_snapshot": action["snapshot"]})

    def _budget_ok(self) -> bool:
        left = self.state["submissions_left"]
        return left is None or left[0] > self.state["options"]["submission_reserve"]

    def _lab_actions(self) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = []
        plan = self.state["plans"]
        for number, trial in sorted(self.state["trials"].items(), key=lambda kv: int(kv[0])):
            stage = trial["stage"]
            if stage == "publish":
                if not self._budget_ok():
                    trial["stage"], trial["note"] = "done", "not submitted: the submission budget is spent"
                    continue
                actions.append(self._action("snapshot_publish", {
                    "message": f"{self.state['name']}: configurable method, trial {number} ({_describe(trial['knobs'])})",
                    "path": f"{SEARCH_DIR}/snap/t{number}"}, trial=int(number)))
                trial["stage"] = "publishing"
            elif stage == "submit" and time.time() >= trial.get("retry_after", 0):
                left = self.state["submissions_left"]
                if left is not None and left[0] <= self.state["options"]["submission_reserve"]:
                    trial["stage"], trial["note"] = "done", "not submitted: the submission budget is spent"
                    continue
                if left is not None and left[1] <= 0 and trial.get("retry_after"):
                    left[1] = 1  # an hour's window has moved on since the refusal: ask again
                paths = self._write_submission(int(number), trial)
                actions.append(self._action("submit_predictions", {
                    "path": paths, "snapshot_id": trial["snapshot"],
                    "method": f"search t{number}: {_describe(trial['knobs'])}"[:200]}, trial=int(number)))
                trial["stage"] = "submitting"
            elif stage == "post":
                actions.append(self._result_post(int(number), trial))
                trial["stage"] = "posting"
            elif stage == "reply":
                actions.append(self._reply(int(number), trial))
                trial["stage"] = "replying"
        if len(self.state["negatives"]) >= self.state["options"]["negatives_per_post"]:
            actions.append(self._negatives_post())
        if self.state["options"]["forum"] and plan % self.state["options"]["forum_every"] == 1:
            actions.append(self._action("forum_read", {}))
        for snapshot, entry in self.state["imported"].items():
            if entry["state"] == "to-fetch":
                entry["state"] = "fetching"
                dest = f"{SEARCH_DIR}/imports/{snapshot[:12]}"
                actions.append(self._action("snapshot_fetch", {"snapshot_id": snapshot, "dest": dest},
                                            snapshot=snapshot, dest=dest))
                break
        return actions

    def _entry_module(self, number: int) -> str:
        return f"searched_t{number}"

    def _write_snapshot(self, number: int, trial: dict[str, Any]) -> str:
        """The config and its entry point, in the folder that is published and that the final runs run."""
        path = f"{SEARCH_DIR}/snap/t{number}"
        out = self.root / path
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "config.json", trial["knobs"])
        (out / f"{self._entry_module(number)}.py").write_text(WRAPPER.format(
            author=self.state["name"], number=number, module=self._entry_module(number),
            description=_describe(trial["knobs"])))
        return path

    def _write_submission(self, number: int, trial: dict[str, Any]) -> list[str]:
        paths = []
        for job in sorted((j for j in trial["jobs"].values() if j["kind"] == FINAL and j["state"] == "done"),
                          key=lambda j: j["seed"]):
            predictions = json.loads((self.root / job["out"]).read_text())
            path = f"{SEARCH_DIR}/submissions/t{number}-s{job['seed']}.json"
            _write_json(self.root / path, predictions)
            paths.append(path)
        return paths

    def _best(self) -> tuple[int, dict[str, Any]] | None:
        scored = [(int(n), t) for n, t in self.state["trials"].items() if t.get("proxy")]
        return max(scored, key=lambda nt: nt[1]["proxy"]["mean"]) if scored else None

    def _vanilla(self) -> dict[str, Any] | None:
        return next((t for t in self.state["trials"].values() if t["origin"] == "vanilla control" and t.get("proxy")),
                    None)

    def _result_post(self, number: int, trial: dict[str, Any]) -> dict[str, Any]:
        sub, proxy = trial["submission"], trial["proxy"]
        vanilla = self._vanilla()
        versus = ""
        if vanilla is not None and vanilla is not trial:
            diff = proxy["mean"] - vanilla["proxy"]["mean"]
            se = math.hypot(proxy["se"], vanilla["proxy"]["se"])
            verdict = "better than" if diff > 2 * se else ("worse than" if diff < -2 * se else "within noise of")
            versus = (f" On the proxy it is {verdict} the vanilla control ({diff:+.3f} ± {se:.3f}; same seeds, "
                      f"same held-aside slice).")
        title = (f"{self.state['name']}: searched config t{number} ({_describe(trial['knobs'])[:80]}), "
                 f"public PGR {pm_grid(sub['pgr'], sub['pgr_se'], sub.get('pgr_step'))} (n={sub['seeds']})")
        body = (f"Direction: {self.state['direction']}. Trial {number} of my Optuna study (origin: {trial['origin']}): "
                f"the configurable method (`aarlab.w2s.methods.configurable`) with config.json = "
                f"`{json.dumps(trial['knobs'], sort_keys=True)}`. The lab's reply to my {sub['seeds']}-seed "
                f"submission #{sub['id']}: public PGR {sub['pgr']:.3f} ± {sub['pgr_se']:.3f} (seed SE), test-sampling "
                f"SE {sub['test_se']:.3f} (coarse). Label-free proxy (agreement with the weak teacher's confident "
                f"labels on a held-aside 20% of train_unlabel): {proxy['mean']:.3f} ± {proxy['se']:.3f} "
                f"(n={proxy['n']}).{versus} The proxy's seeds trained on the other 80% of train_unlabel; the "
                f"submitted predictions are the entry point's own (trained on all of it), so the verifier re-runs "
                f"what was scored.")
        metrics = {"pgr": sub["pgr"], "pgr_se": sub["pgr_se"], "seeds": sub["seeds"],
                   "proxy": round(proxy["mean"], 4), "proxy_se": round(proxy["se"], 4)}
        if math.isfinite(sub["test_se"]):
            metrics["test_se"] = sub["test_se"]
        if sub.get("pgr_step"):
            metrics["pgr_step"] = sub["pgr_step"]
        return self._action("forum_post", {
            "kind": "result", "title": title[:300], "body": body,
            "tags": ["search", self.state["direction"] or "general", trial["knobs"].get("loss", "xent")],
            "snapshot_id": trial["snapshot"], "metrics": metrics, "entry_point": self._entry_module(number),
            "submission_id": sub["id"]}, trial=number)

    def _reply(self, number: int, trial: dict[str, Any]) -> dict[str, Any]:
        proxy, sub = trial.get("proxy"), trial.get("submission")
        best = self._best()
        found = [f"I ran your config.json (snapshot {trial['source_snapshot']}) as trial {number} of my search"]
        if proxy:
            found.append(f"label-free proxy {proxy['mean']:.3f} ± {proxy['se']:.3f} over {proxy['n']} seeds")
        if sub:
            found.append(f"public PGR {sub['pgr']:.3f} ± {sub['pgr_se']:.3f} (n={sub['seeds']}, my submission "
                         f"#{sub['id']})")
        if best is not None and proxy and best[0] != number:
            b = best[1]["proxy"]
            found.append(f"my best so far (t{best[0]}: {_describe(best[1]['knobs'])}) has proxy "
                         f"{b['mean']:.3f} ± {b['se']:.3f}" + (" — beats it" if b["mean"] - proxy["mean"] >
                                                             2 * math.hypot(b["se"], proxy["se"]) else ""))
        return self._action("forum_reply", {"post_id": trial["source_post"], "body": "; ".join(found) + "."},
                            trial=number)

    def _negatives_post(self) -> dict[str, Any]:
        numbers = list(self.state["negatives"])
        lines = []
        for n in numbers:
            t = self.state["trials"][str(n)]
            if p := t.get("proxy"):
                lines.append(f"- t{n} ({_describe(t['knobs'])}): proxy {p['mean']:.3f} ± {p['se']:.3f} "
                             f"(n={p['n']}), {t.get('cut', 'cut after three seeds')}")
            else:
                lines.append(f"- t{n} ({_describe(t['knobs'])}): proxy {t['cheap_proxy']:.3f} from one cheap run "
                             f"(1 seed, a subsample): weak evidence, cut at the first rung")
        best = self._best()
        head = ("Cut by successive halving (not in the top third of the configs at their rung), or not above "
                "my best submitted config" + (f"; best so far t{best[0]} at proxy {best[1]['proxy']['mean']:.3f}"
                                               if best else "") + ":")
        return self._action("forum_post", {
            "kind": "error", "title": f"{self.state['name']}: {len(numbers)} searched configs that did not pay off",
            "body": head + "\n" + "\n".join(lines), "tags": ["search", "negative-result"]},
            negatives=numbers)

    def _summary(self) -> str:
        trials = self.state["trials"].values()
        submitted = sum(1 for t in trials if t.get("submission"))
        best = self._best()
        text = (f"{self.state['name']}: search finished — {len(self.state['trials'])} trials, {submitted} submitted")
        if best:
            text += f"; best t{best[0]} ({_describe(best[1]['knobs'])}) proxy {best[1]['proxy']['mean']:.3f}"
        return text


# ------------------------------------------------------------------------------------------------ the hands
