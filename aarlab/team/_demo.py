"""The ``demo`` researcher: a scripted but real research trajectory, so that aarlab runs offline end to end.

``aarlab run`` with no API key and no ``--model`` gives every agent this model (``scripted:demo``). It calls
the same tools a real researcher would, against the real lab server and in its real sandbox; only its
choices are fixed in advance. Per agent it

1. reads its workspace README (to learn its name and direction) and the task's fixed baselines;
2. reads the forum;
3. copies a known method from ``baselines/`` into ``method/`` and writes its own variant around it — each
   direction transforms the weak labels its own way (sharpening, smoothing, confident filtering, a class-prior
   correction) before the known method trains on them;
4. runs the variant for three seeds, submits each seed's predictions, publishes ``method/`` as a snapshot and
   posts a ``result`` with PGR ± SE over the seeds;
5. reads the forum until another agent's result appears, fetches that snapshot, runs it with its own label
   transform on top, submits once, replies to the other agent's post and posts what it found;
6. writes its notebook, looks at the leaderboard and finishes.

The next action is computed from the conversation alone (each tool call's id names its phase), so a run
resumed from its transcript in a new process continues exactly where it was, and a tool call that a crash
interrupted is never repeated: the demo moves on instead (a submission or a post is never sent twice).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from aarlab.llm import Message, ToolSpec

SEEDS = (0, 1, 2)
EXTRA_SEED = 3  # used when a seed's run was lost
# Forum reads (with a sleep between) while waiting for another agent's result: up to ~3 minutes with the
# real methods (a fine-tune takes a minute or more on a CPU), ~40 s with the light learner.
WAIT_POLLS = 20
WAIT_SLEEP_S = 10
WAIT_SLEEP_LIGHT_S = 2

# direction -> (preferred known methods, label transform, its parameter, what the variation is)
VARIANTS: dict[str, tuple[tuple[str, ...], str, float, str]] = {
    "unsupervised-elicitation": (("vanilla",), "smooth", 0.3,
                                 "lean on the strong model's own prior: weak labels smoothed 0.3 towards uniform"),
    "data-reweighting": (("vanilla",), "filter", 0.8, "train only on the 80% most confident weak labels"),
    "noisy-channel-em": (("vanilla",), "balance", 1.0,
                         "one EM step of a class-prior correction of the weak soft labels (a noisy channel)"),
    "distillation": (("vanilla",), "sharpen", 0.5, "distil from temperature-sharpened weak labels (T = 0.5)"),
    "w2s-plus-elicitation": (("logconf", "vanilla"), "sharpen", 0.8,
                             "auxiliary confidence loss on mildly sharpened weak labels (T = 0.8)"),
    "simplicity-bias": (("vanilla",), "smooth", 0.1, "label smoothing 0.1 towards uniform, so noise is fitted less"),
    "learnability-selection": (("confident", "vanilla"), "filter", 0.7,
                               "keep the 70% of examples whose weak label is most learnable (most confident)"),
    "evolutionary-search": (("vanilla",), "sharpen", 0.7, "the best of a tiny population of sharpening temperatures: T = 0.7"),
    "interpretability": (("vanilla",), "filter", 0.9, "drop the 10% of examples farthest from a clean concept"),
}
DEFAULT_VARIANT: tuple[tuple[str, ...], str, float, str] = (("vanilla",), "sharpen", 0.8,
                                                            "sharpened weak labels (T = 0.8)")

WRAPPER = '''"""{author}'s variant of the known method `{base}` ({direction}): {description}.

Same contract as every method: python -m {module} --data-dir D --out predictions.json --seed S.
It writes a copy of D whose weak soft labels are transformed ({transform}, parameter {param}) and runs
`{base}` (a module next to this file, or the lab's own) on that copy.
"""

import argparse
import json
import os
import runpy
import shutil
import sys
import tempfile

BASE = {base!r}
TRANSFORM = {transform!r}
PARAM = {param!r}


def transform(rows):
    if TRANSFORM == "sharpen":
        for row in rows:
            powered = [max(p, 1e-9) ** (1.0 / PARAM) for p in row["weak_soft_label"]]
            row["weak_soft_label"] = [p / sum(powered) for p in powered]
    elif TRANSFORM == "smooth":
        for row in rows:
            k = len(row["weak_soft_label"])
            row["weak_soft_label"] = [(1 - PARAM) * p + PARAM / k for p in row["weak_soft_label"]]
    elif TRANSFORM == "filter":
        rows = sorted(rows, key=lambda r: -max(r["weak_soft_label"]))[: max(2, int(len(rows) * PARAM))]
    elif TRANSFORM == "balance":
        k = len(rows[0]["weak_soft_label"])
        prior = [sum(r["weak_soft_label"][c] for r in rows) / len(rows) for c in range(k)]
        for row in rows:
            adjusted = [p / max(prior[c] * k, 1e-9) for c, p in enumerate(row["weak_soft_label"])]
            row["weak_soft_label"] = [p / sum(adjusted) for p in adjusted]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args, rest = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="variant-") as data:
        for name in os.listdir(args.data_dir):
            if name != "train_unlabel.jsonl" and os.path.isfile(os.path.join(args.data_dir, name)):
                shutil.copy(os.path.join(args.data_dir, name), os.path.join(data, name))
        with open(os.path.join(args.data_dir, "train_unlabel.jsonl")) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        with open(os.path.join(data, "train_unlabel.jsonl"), "w") as fh:
            for row in transform(rows):
                fh.write(json.dumps(row) + "\\n")
        sys.argv = [BASE, "--data-dir", data, "--out", os.path.abspath(args.out), "--seed", str(args.seed), *rest]
        try:
            runpy.run_module(BASE, run_name="__main__", alter_sys=True)
        except ImportError:
            runpy.run_module("aarlab.w2s.methods." + BASE, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
'''


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


@dataclass
class _Facts:
    """What the demo knows, rebuilt from the conversation at every call."""

    name: str = ""
    direction: str = ""  # the direction's short name (from the README's title line)
    task_dir: str = "/task"
    phases: list[str] = field(default_factory=list)  # phase of each past tool call, in order
    results: dict[str, tuple[str, bool]] = field(default_factory=dict)  # phase -> (content, is_error)
    # The lab's reply to the one multi-seed submission: (submission id, mean PGR, seed SE, seeds, test SE).
    claim: tuple[int, float, float, int, float] | None = None
    pgr_step: float | None = None  # the reply's PGR grid
    ran: set[int] = field(default_factory=set)  # seeds whose run succeeded
    snapshot: str | None = None
    other: tuple[int, str, str, str] | None = None  # (post id, author, snapshot id, entry point)
    polls: int = 0
    team_size: int = 2
    combo_pgr: float | None = None
    # Seeds as background jobs (where the agent has job tools): started, ended (however), started-but-refused.
    job_started: set[int] = field(default_factory=set)
    job_ended: set[int] = field(default_factory=set)
    job_refused: set[int] = field(default_factory=set)  # not for want of a slot: these run with bash instead
    slots_full: bool = False  # the last start was refused for want of a slot, and no wait has freed one since
    waits: int = 0


SUBMIT_REPLY = re.compile(r"submission #(\d+) \((\d+) seeds?\) on the public test part: accuracy [-\d.]+, "
                          r"PGR (-?[\d.]+)(?: ± ([\d.]+) \(seed SE\))?, test-sampling SE ([\d.]+|inf)")
PGR_GRID = re.compile(r"PGR on a grid of ([\d.]+)")  # the reply's PGR resolution (a seed SE below ~half shows as 0)
JOB_LINE = re.compile(r"^seed-(\d+): (\w+) (.*)$", re.MULTILINE)


def pm_grid(mean: float, se: float, step: float | None) -> str:
    """``mean ± se`` for a post title; a seed SE the coarse reply rounded to 0 reads ``± <step``, not ``± 0.00``."""
    from aarlab.server import below_grid

    return f"{mean:.2f} ± <{step:.2f}" if below_grid(se, step, 2) else f"{mean:.2f} ± {se:.2f}"
POST_LINE = re.compile(r"#(\d+) \[result\] .*? by (\S+).*? snapshot=(\S+)(?: entry_point=(\S+))?")


LIGHT_METHOD = "bow_nb"
LIGHT_SOURCE = '''"""Bag-of-words naive Bayes trained on the weak teacher's soft labels: a tiny weak-to-strong learner in pure Python.

python -m bow_nb --data-dir D --out predictions.json --seed S (the seed picks a 90% bootstrap of the data).
"""

import argparse
import json
import math
import os
import random
import re


def words(row, fields):
    text = row["text"] if "text" in row else " ".join(str(row.get(f, "")) for f in fields)
    return re.findall(r"[a-z']+", text.lower())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args, _ = parser.parse_known_args()
    with open(os.path.join(args.data_dir, "task.json")) as fh:
        info = json.load(fh)
    fields, k = info.get("input_fields", ["text"]), len(info["label_space"])
    with open(os.path.join(args.data_dir, "train_unlabel.jsonl")) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    random.Random(args.seed).shuffle(rows)
    rows = rows[: max(2, int(len(rows) * 0.9))]
    counts, totals, prior = [{} for _ in range(k)], [1e-9] * k, [1e-9] * k
    for row in rows:
        soft, toks = row["weak_soft_label"], words(row, fields)
        for c in range(k):
            prior[c] += soft[c]
            totals[c] += soft[c] * len(toks)
            for t in toks:
                counts[c][t] = counts[c].get(t, 0.0) + soft[c]
    vocab = len(set().union(*counts)) + 1
    predictions = []
    with open(os.path.join(args.data_dir, "test.jsonl")) as fh:
        for line in fh:
            if line.strip():
                toks = words(json.loads(line), fields)
                scores = [math.log(prior[c]) + sum(math.log((counts[c].get(t, 0.0) + 1) / (totals[c] + vocab))
                                                   for t in toks) for c in range(k)]
                predictions.append(max(range(k), key=scores.__getitem__))
    with open(args.out, "w") as fh:
        json.dump(predictions, fh)


if __name__ == "__main__":
    main()
'''


class DemoResearcher:
    """The demo model's brain: ``__call__(messages, tools)`` returns the next scripted step.

    ``light=True`` (``scripted:demo-light``) runs the same trajectory with a pure-Python bag-of-words learner
    (``bow_nb``, written into the workspace) instead of the torch-based known methods: for tests and for
    machines without the ``w2s`` extra. Its numbers are real but say nothing about the task's models.
    """

    def __init__(self, methods: list[str] | None = None, light: bool = False):
        self.light = light
        if light:
            methods = [LIGHT_METHOD]
        elif methods is None:
            from aarlab.team._workspace import method_sources

            methods = [name.removesuffix(".py") for name in method_sources() if not name.startswith("_")]
        self.methods = methods

    # ------------------------------------------------------------------------------- reading the past
    def _facts(self, messages: list[Message]) -> _Facts:
        facts = _Facts()
        outputs = {m.tool_call_id: (m.content, m.is_error) for m in messages if m.role == "tool"}
        for message in messages:
            if message.role != "assistant":
                continue
            for call in message.tool_calls:
                phase = call.id.split(".", 1)[0] if call.id.startswith("demo-") else "other"
                facts.phases.append(phase)
                content, is_error = outputs.get(call.id, ("", True))
                facts.results[phase] = (content, is_error)
                self._learn(facts, phase, call.arguments, content, is_error)
        return facts

    def _learn(self, facts: _Facts, phase: str, arguments: dict, content: str, is_error: bool) -> None:
        if phase == "demo-look" and not is_error:
            if m := re.search(r"You are \*\*(.+?)\*\*", content):
                facts.name = m.group(1)
            if m := re.search(r"one of (\d+) researchers", content):
                facts.team_size = int(m.group(1))
            if m := re.search(r"Your direction: .*?\(`([^`]+)`", content):
                facts.direction = m.group(1)
            if m := re.search(r"TASK_DIR=(\S+)", content):
                facts.task_dir = m.group(1)
        elif phase.startswith("demo-run-") and not is_error:
            facts.ran.add(int(phase.rsplit("-", 1)[1]))
        elif phase.startswith("demo-jstart-"):
            seed = int(phase.split("-")[2])
            if not is_error:
                facts.job_started.add(seed)
            elif "slot" in content:
                facts.slots_full = True
            else:
                facts.job_refused.add(seed)
        elif phase.startswith("demo-jwait-"):
            facts.waits += 1
            facts.slots_full = False
            for m in JOB_LINE.finditer(content if not is_error else ""):
                seed, state, rest = int(m.group(1)), m.group(2), m.group(3)
                if state != "running":
                    facts.job_ended.add(seed)
                    if state == "exited" and re.search(r"exit code 0\b", rest):
                        facts.ran.add(seed)
        elif phase in ("demo-submit", "demo-resubmit") and not is_error:
            if m := SUBMIT_REPLY.search(content):
                facts.claim = (int(m.group(1)), float(m.group(3)), float(m.group(4) or 0.0), int(m.group(2)),
                               float(m.group(5)))
                if g := PGR_GRID.search(content):
                    facts.pgr_step = float(g.group(1))
        elif phase == "demo-publish" and not is_error:
            if m := re.search(r"published snapshot (\S+)", content):
                facts.snapshot = m.group(1)
        elif phase.startswith("demo-wait-read") and not is_error:
            facts.polls += 1
            if facts.other is None:
                for line in content.splitlines():
                    m = POST_LINE.search(line)
                    if m and m.group(2) != facts.name and m.group(4):
                        facts.other = (int(m.group(1)), m.group(2), m.group(3), m.group(4))
                        break
        elif phase.startswith("demo-wait-sleep"):
            pass
        elif phase == "demo-combo-submit" and not is_error:
            if m := re.search(r"PGR (-?\d+(?:\.\d+)?)", content):
                facts.combo_pgr = float(m.group(1))

    # ------------------------------------------------------------------------------- the plan
    def variant(self, facts: _Facts) -> tuple[str, str, float, str]:
        preferred, transform, param, description = VARIANTS.get(facts.direction, DEFAULT_VARIANT)
        if self.light:
            return LIGHT_METHOD, transform, param, description
        base = next((m for m in preferred if m in self.methods), None)
        if base is None:
            base = "vanilla" if "vanilla" in self.methods or not self.methods else self.methods[0]
        return base, transform, param, description

    def module(self, facts: _Facts) -> str:
        return f"variant_{_slug(facts.name or 'demo')}"

    def __call__(self, messages: list[Message], tools: list[ToolSpec]) -> Any:
        facts = self._facts(messages)
        done = set(facts.phases)
        tool_names = {t.name for t in tools}

        def call(phase: str, tool: str, **arguments) -> dict:
            return {"content": "", "tool_calls": [{"id": f"demo-{phase}.{len(facts.phases)}", "name": tool,
                                                   "arguments": arguments}]}

        if "demo-look" not in done:
            return call("look", "bash", command=(
                "head -n 5 README.md; "
                "test -f /task/task.json && echo TASK_DIR=/task || echo TASK_DIR=$PWD/task; "
                "python - <<'EOF'\nimport json, os\n"
                "d = '/task' if os.path.exists('/task/task.json') else 'task'\n"
                "info = json.load(open(os.path.join(d, 'task.json')))\n"
                "print('task', info['name'], 'labels', info['label_space'], 'weak', info['weak_model'],"
                " 'strong', info['strong_model'])\nprint('fixed baselines', json.dumps(info['fixed']))\nEOF\n"
                "ls baselines"))
        if "demo-read" not in done:
            return call("read", "forum_read")
        base, transform, param, description = self.variant(facts)
        module = self.module(facts)
        if "demo-copy" not in done and self.light:
            return call("copy", "write_file", path=f"method/{LIGHT_METHOD}.py", content=LIGHT_SOURCE)
        if "demo-copy" not in done:
            return call("copy", "bash", command=(
                f"mkdir -p method out && (cp baselines/{base}.py method/ 2>/dev/null; "
                f"cp baselines/_*.py method/ 2>/dev/null; true) && ls method"))
        if "demo-write" not in done:
            text = WRAPPER.format(author=facts.name, base=base, direction=facts.direction or "general",
                                  description=description, module=module, transform=transform, param=param)
            return call("write", "write_file", path=f"method/{module}.py", content=text)

        seeds = list(SEEDS)
        if any((f"demo-run-{s}" in done or s in facts.job_ended) and s not in facts.ran for s in SEEDS):
            seeds.append(EXTRA_SEED)  # a crash or a failure lost one seed: one more keeps three

        def run_seed(seed: int) -> str:
            return (f"mkdir -p out && PYTHONPATH=method python -m {module} --data-dir {facts.task_dir} "
                    f"--out out/{module}_s{seed}.json --seed {seed} && echo wrote out/{module}_s{seed}.json")

        if {"job_start", "job_wait"} <= tool_names:
            # The seeds run side by side as background jobs, as many as the agent's slots allow; a start refused
            # for want of a slot waits for a running seed to end first.
            pending = [s for s in seeds if s not in facts.job_started and s not in facts.job_refused]
            if pending and not facts.slots_full:
                return call(f"jstart-{pending[0]}-{facts.waits}", "job_start", name=f"seed-{pending[0]}",
                            command=run_seed(pending[0]))
            running = sorted(facts.job_started - facts.job_ended)
            if running:
                return call(f"jwait-{facts.waits}", "job_wait", names=[f"seed-{s}" for s in running], timeout=1800)
            seeds = sorted(facts.job_refused)  # these few go the blocking way below
        for seed in seeds:
            if f"demo-run-{seed}" not in done:
                return call(f"run-{seed}", "bash", command=run_seed(seed))
        # Publish the code before submitting, so the submission names the snapshot that produced it and the
        # result post can name the submission whose numbers it reports.
        if "demo-publish" not in done:
            return call("publish", "snapshot_publish", message=f"{facts.name}: {description}", path="method")
        ran = sorted(facts.ran)
        # All seeds in one submission: the lab replies with their mean, seed SE and test SE. An interrupted
        # submission is never sent again (it may have counted); one more, under a new name, replaces it.
        for phase in ("submit", "resubmit"):
            if facts.claim is None and ran and f"demo-{phase}" not in done:
                return call(phase, "submit_predictions", path=[f"out/{module}_s{seed}.json" for seed in ran],
                            method=f"{module} seeds {','.join(map(str, ran))}", snapshot_id=facts.snapshot)
            if facts.claim is not None or not facts.results.get(f"demo-{phase}", ("", False))[1]:
                break
        if "demo-post" not in done:
            if facts.snapshot and facts.claim is not None and facts.claim[3] >= len(SEEDS):
                sub_id, mean, se, n, test_se = facts.claim
                return call("post", "forum_post", kind="result",
                            title=f"{facts.name}: {base} with {transform} labels, PGR {pm_grid(mean, se, facts.pgr_step)} (n={n})",
                            body=(f"Direction: {facts.direction}. Variation: {description}. I copied the known "
                                  f"method `{base}` and run it on transformed weak labels. The lab's reply to my "
                                  f"{n}-seed submission #{sub_id}: public PGR {mean:.3f} ± {se:.3f} (seed SE), "
                                  f"test-sampling SE {test_se:.3f} (coarse, as the lab reports it"
                                  + (f": PGR on a grid of {facts.pgr_step:.3f}, so a seed SE shown as 0 is below one "
                                     f"step" if facts.pgr_step else "") + ")."),
                            tags=[facts.direction or "general", base, transform], snapshot_id=facts.snapshot,
                            metrics={"pgr": mean, "pgr_se": se, "seeds": n,
                                     **({"test_se": test_se} if math.isfinite(test_se) else {}),
                                     **({"pgr_step": facts.pgr_step} if facts.pgr_step else {})},
                            entry_point=module, submission_id=sub_id)
            scored = facts.claim[3] if facts.claim is not None else 0
            return call("post", "forum_post", kind="error", title=f"{facts.name}: {base} variant did not complete",
                        body=f"Only {scored} seed(s) scored; not enough for a result. Variation: {description}.",
                        tags=[facts.direction or "general"])
        if "demo-notebook" not in done:
            return call("notebook", "edit_file", path="NOTEBOOK.md", old="## Results (PGR ± SE, seeds, snapshot)\n",
                        new="## Results (PGR ± SE, seeds, snapshot)\n\n- " + (
                            f"PGR {facts.claim[1]:.3f} ± {facts.claim[2]:.3f} (n={facts.claim[3]}, test SE "
                            f"{facts.claim[4]:.3f}, submission #{facts.claim[0]})" if facts.claim else "no scored seeds")
                        + f" — {description}; snapshot {facts.snapshot}\n")

        # Build on someone else's work: wait (bounded) for another agent's result post.
        if facts.other is None and facts.polls < (WAIT_POLLS if facts.team_size > 1 else 0):
            if facts.phases and facts.phases[-1].startswith("demo-wait-read"):
                pause = WAIT_SLEEP_LIGHT_S if self.light else WAIT_SLEEP_S
                return call(f"wait-sleep-{facts.polls}", "bash", command=f"sleep {pause}; echo waited")
            return call(f"wait-read-{facts.polls}", "forum_read")
        if facts.other is not None:
            post_id, author, snapshot, entry = facts.other
            dest = f"built_on/{snapshot[:12]}"
            if "demo-fetch" not in done:
                return call("fetch", "snapshot_fetch", snapshot_id=snapshot, dest=dest)
            if "demo-combo-write" not in done and not facts.results["demo-fetch"][1]:
                text = WRAPPER.format(author=facts.name, base=entry, direction=facts.direction or "general",
                                      description=f"{author}'s method with my {transform} transform on top",
                                      module=f"combo_{module}", transform=transform, param=param)
                return call("combo-write", "write_file", path=f"{dest}/combo_{module}.py", content=text)
            if "demo-combo-write" in done and "demo-combo-run" not in done:
                return call("combo-run", "bash", command=(
                    f"PYTHONPATH={dest} python -m combo_{module} --data-dir {facts.task_dir} "
                    f"--out out/combo_{module}.json --seed 0 && echo wrote out/combo_{module}.json"))
            if "demo-combo-run" in done and not facts.results["demo-combo-run"][1] and "demo-combo-submit" not in done:
                return call("combo-submit", "submit_predictions", path=f"out/combo_{module}.json",
                            method=f"{author}'s {entry} + {transform} (seed 0)")
            if "demo-reply" not in done:
                found = (f"public PGR {facts.combo_pgr:.2f} with one seed" if facts.combo_pgr is not None
                         else "it did not run through for me")
                return call("reply", "forum_reply", post_id=post_id,
                            body=f"I fetched your snapshot {snapshot} and ran `{entry}` with my {transform} "
                                 f"label transform on top: {found}. Thanks for publishing it.")
            if "demo-insight" not in done:
                verdict = "inconclusive (one seed)"
                if facts.combo_pgr is not None and facts.claim is not None:
                    own = facts.claim[1]
                    verdict = "better than my own variant" if facts.combo_pgr > own else "no better than my own variant"
                return call("insight", "forum_post", kind="insight",
                            title=f"{facts.name}: {author}'s {entry} + {transform} labels",
                            body=f"Combining {author}'s method (snapshot {snapshot}) with my {transform} transform "
                                 f"gave public PGR {facts.combo_pgr if facts.combo_pgr is not None else 'n/a'}: "
                                 f"{verdict}.", tags=["combination", facts.direction or "general"])
        if "demo-leaderboard" not in done:
            return call("leaderboard", "leaderboard")
        if "finish" in tool_names and "demo-finish" not in done:
            return call("finish", "finish", summary=f"{facts.name}: scripted demo trajectory complete.")
        return f"{facts.name}: my scripted research is complete."


def make_demo_model(model: str = "", light: bool = False, **options: Any):
    """A ``ScriptedModel`` driven by ``DemoResearcher``: ``scripted:demo`` (or ``demo:*``), and
    ``scripted:demo-light`` / ``demo:light`` with the pure-Python learner."""
    from aarlab.llm import ScriptedModel

    options.pop("script", None)
    light = light or model == "light"
    name = options.pop("name", "scripted:demo-light" if light else "scripted:demo")
    return ScriptedModel(generator=DemoResearcher(light=light), name=name, **options)


def make_demo_light_model(model: str = "", **options: Any):
    """``scripted:demo-light``: the demo researcher with the pure-Python learner (fast tests)."""
    return make_demo_model(model, light=True, **options)


def _register() -> None:
    # The same factories are declared as ``aarlab.scripts`` entry points in pyproject.toml, which is how
    # ``scripted:demo`` is found in a process that never imported aarlab.team.
    from aarlab.llm import provider, register_script

    register_script("demo", make_demo_model)
    register_script("demo-light", make_demo_light_model)
    provider("demo")(make_demo_model)


_register()

__all__ = ["DemoResearcher", "make_demo_light_model", "make_demo_model"]
