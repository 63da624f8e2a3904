"""BIG-bench tasks, read out of the ``bigbench==1.0.0`` sdist (it cannot be pip-installed).

The archive (358 MB) is fetched once with pip < 24 from a throwaway venv into ``cache_dir()/downloads``;
``$AARLAB_BIGBENCH_SDIST`` may point at a copy. Each task's ``task.json`` is extracted into
``cache_dir()/bigbench/`` on first use. The files carry BIG-bench's canary string: they belong in the cache,
never in a repository.

Conversion to a binary task:
- a task whose examples all share the same two options is a classification task as it stands;
- ``?labels=a,b`` keeps only the examples whose correct option is ``a`` or ``b`` (e.g. MultiEmo's
  positive/negative out of four sentiments);
- MultiEmo (``multiemo/<subtask>``) keeps ``negative,positive`` unless ``?labels=`` says otherwise: its
  four sentiments with neutral and ambivalent are a poor binary task;
- any other multiple-choice task becomes binary as in Burns et al. (2023): the question with its correct
  option (``True``) or with one random wrong option (``False``), a fair coin deciding which, seeded.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from aarlab.errors import UserError
from aarlab.paths import atomic_write_text, cache_dir
from aarlab.w2s.datasets._registry import Example, dataset

SDIST_NAME = "bigbench-1.0.0.tar.gz"
# Tasks whose sensible binary version keeps two of their options (see the module docstring).
DEFAULT_LABELS = {"multiemo": ["negative", "positive"]}
_TASKS_PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"


def sdist_path(download: bool = True) -> Path:
    """The BIG-bench sdist on disk, downloading it once if needed."""
    if env := os.environ.get("AARLAB_BIGBENCH_SDIST"):
        path = Path(env)
        if not path.is_file():
            raise UserError(f"AARLAB_BIGBENCH_SDIST={env} is not a file")
        return path
    path = cache_dir() / "downloads" / SDIST_NAME
    if path.is_file():
        return path
    if not download:
        raise UserError(f"the BIG-bench sdist is not cached at {path}")
    _download(path)
    return path


def _download(path: Path) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".bigbench-") as tmp, Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    ) as progress:
        # pip >= 24 refuses this sdist (its metadata has a direct-URL dependency), so use a throwaway pip 23.
        progress.add_task("downloading BIG-bench (pip download bigbench==1.0.0, 358 MB, once)", total=None)
        venv = Path(tmp) / "venv"
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "pip<24"],
            [str(venv / "bin" / "python"), "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, "bigbench==1.0.0"],
        ]
        for cmd in steps:
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise UserError(f"cannot download BIG-bench: {exc}") from None
            if out.returncode != 0:
                last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise UserError(
                    f"cannot download BIG-bench ({last}); download {SDIST_NAME} by hand and set AARLAB_BIGBENCH_SDIST"
                )
        got = Path(tmp) / SDIST_NAME
        if not got.is_file():
            raise UserError(f"pip did not produce {SDIST_NAME}; set AARLAB_BIGBENCH_SDIST to a copy")
        os.replace(got, path)


def _extract_dir() -> Path:
    return cache_dir() / "bigbench"


def task_names() -> list[str]:
    """Every ``<task>[/<subtask>]`` in the archive (cached after the first scan)."""
    index = _extract_dir() / "index.json"
    if index.is_file():
        return json.loads(index.read_text())
    names = []
    with _open_tar() as tar:
        for member in tar:
            if member.name.startswith(_TASKS_PREFIX) and member.name.endswith("/task.json"):
                names.append(member.name[len(_TASKS_PREFIX):-len("/task.json")])
    atomic_write_text(index, json.dumps(sorted(names)))
    return sorted(names)


def _open_tar() -> tarfile.TarFile:
    path = sdist_path()
    try:
        return tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"{path} is not a readable BIG-bench archive ({exc}); delete it to fetch it again") from None


def task_json(task: str) -> dict:
    """The parsed ``task.json`` of ``task`` (``<task>`` or ``<task>/<subtask>``)."""
    task = task.strip("/")
    cached = _extract_dir() / task / "task.json"
    if not cached.is_file():
        names = task_names()
        if task not in names:
            import difflib

            near = difflib.get_close_matches(task, names, n=3, cutoff=0.5)
            subtasks = [n for n in names if n.startswith(task + "/")]
            hint = f"; it has subtasks: {', '.join(subtasks[:6])}" if subtasks else (
                f"; did you mean {', '.join(near)}?" if near else "")
            raise UserError(f"BIG-bench has no task {task!r}{hint}")
        from rich.progress import Progress, SpinnerColumn, TextColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as progress:
            progress.add_task(f"extracting BIG-bench task {task}", total=None)
            with _open_tar() as tar:
                member = tar.extractfile(f"{_TASKS_PREFIX}{task}/task.json")
                assert member is not None
                atomic_write_text(cached, member.read().decode("utf-8"))
    return json.loads(cached.read_text(encoding="utf-8"))


def convert(data: dict, task: str, labels: list[str] | None, seed: int) -> list[Example]:
    """Turn BIG-bench examples into binary Examples (see the module docstring for the rules)."""
    raw = [e for e in data.get("examples", []) if isinstance(e.get("target_scores"), dict) and e["target_scores"]]
    if not raw:
        raise UserError(f"BIG-bench task {task} has no multiple-choice examples (target_scores); pick another task")
    prefix = "bb/" + task.replace("/", "-")
    if labels is not None:
        label_space = tuple(labels)
        out = []
        for i, ex in enumerate(raw):
            correct = max(ex["target_scores"], key=ex["target_scores"].get)
            if correct in label_space:
                out.append(Example(f"{prefix}/{i}", ex["input"].strip(), label_space.index(correct), label_space,
                                   {"input": ex["input"]}))
        if not out:
            raise UserError(f"no example of BIG-bench task {task} has a correct option among {labels}")
        return out
    option_sets = {tuple(sorted(ex["target_scores"])) for ex in raw}
    if len(option_sets) == 1 and len(next(iter(option_sets))) == 2:
        label_space = tuple(sorted(next(iter(option_sets))))
        return [
            Example(f"{prefix}/{i}", ex["input"].strip(),
                    label_space.index(max(ex["target_scores"], key=ex["target_scores"].get)), label_space,
                    {"input": ex["input"]})
            for i, ex in enumerate(raw)
        ]
    return multiple_choice_to_binary(raw, prefix, seed)


def multiple_choice_to_binary(raw: list[dict], prefix: str, seed: int) -> list[Example]:
    """Burns et al.: the question with its correct option (True) or a random wrong one (False)."""
    label_space = ("False", "True")
    out = []
    for i, ex in enumerate(raw):
        scores = ex["target_scores"]
        best = max(scores.values())
        correct = [o for o, s in scores.items() if s == best]
        wrong = [o for o, s in scores.items() if s < best]
        if not wrong:
            continue
        # One generator per example, so an example's conversion does not depend on which others were kept.
        rng = random.Random(f"{seed}:{prefix}:{i}")
        is_true = rng.random() < 0.5
        option = rng.choice(correct) if is_true else rng.choice(wrong)
        question = ex["input"].strip()
        out.append(Example(f"{prefix}/{i}", f"{question}\nAnswer: {str(option).strip()}", int(is_true), label_space,
                           {"question": question, "answer": str(option)}))
    return out


@dataset("bigbench", example="bigbench:multiemo/all_sentence_en?labels=negative,positive")
def load_bigbench(argument: str | None, options: dict[str, str], seed: int) -> list[Example]:
    """BIG-bench task by name (binary, or multiple choice made binary as in Burns et al.)."""
    if not argument:
        raise UserError("say which BIG-bench task: bigbench:<task>[/<subtask>], e.g. bigbench:strategyqa")
    labels = [x.strip() for x in options["labels"].split(",") if x.strip()] if options.get("labels") else None
    if labels is None:
        labels = DEFAULT_LABELS.get(argument.split("/")[0])
    if labels is not None and len(labels) < 2:
        raise UserError("?labels= needs at least two comma-separated options")
    data = task_json(argument)
    if not data.get("examples"):
        subtasks = [n for n in task_names() if n.startswith(argument.strip("/") + "/")]
        if subtasks:
            raise UserError(f"BIG-bench task {argument} is split into subtasks; name one: {', '.join(subtasks[:6])}")
    return convert(data, argument, labels, seed)
