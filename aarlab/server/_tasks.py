"""Tasks as the server holds them: labels and baseline predictions loaded once into numpy, scored in O(n).

Labels are read from the prepared task directory (``private/``) by the server process only; they never go
into the database or a reply.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aarlab.errors import UserError
from aarlab.w2s.scoring import Score
from aarlab.w2s.taskdir import TaskDir, TaskInfo


@dataclass(frozen=True)
class PartScorer:
    """Scores predictions on one subset of a test split (public, private, or the whole held-out split)."""

    labels: np.ndarray  # labels of the subset
    index: np.ndarray  # positions of the subset in test order
    weak_acc: float
    ceiling_acc: float

    def score(self, predictions: np.ndarray) -> Score:
        transfer = float(np.count_nonzero(predictions[self.index] == self.labels)) / len(self.labels)
        pgr = (transfer - self.weak_acc) / (self.ceiling_acc - self.weak_acc)
        return Score(transfer_acc=transfer, weak_acc=self.weak_acc, ceiling_acc=self.ceiling_acc, pgr=pgr,
                     n_examples=len(self.labels))


def _part(labels: np.ndarray, index: np.ndarray, baselines: dict[str, list[list[int]]], where: str) -> PartScorer:
    if len(index) == 0:
        raise UserError(f"{where}: no test examples in this part")
    y = labels[index]

    def mean_acc(kind: str) -> float:
        runs = baselines.get(kind) or []
        if not runs:
            raise UserError(f"{where}: baseline_predictions.json has no {kind!r} predictions")
        accs = []
        for run in runs:
            run = np.asarray(run, dtype=np.int64)
            if run.shape != labels.shape:
                raise UserError(f"{where}: a {kind} baseline has {len(run)} predictions for {len(labels)} test inputs")
            accs.append(float(np.count_nonzero(run[index] == y)) / len(y))
        return sum(accs) / len(accs)

    weak, ceiling = mean_acc("weak"), mean_acc("ceiling")
    if ceiling <= weak:
        raise UserError(f"{where}: the strong ceiling ({ceiling:.3f}) does not beat the weak teacher ({weak:.3f}), "
                        "so PGR is undefined")
    return PartScorer(labels=y, index=index, weak_acc=weak, ceiling_acc=ceiling)


@dataclass(frozen=True)
class LoadedTask:
    """One registered task: public info plus scorers for the public part, the private part and held-out."""

    id: int
    name: str
    task_dir: Path
    info: TaskInfo
    n_test: int
    n_labels: int
    public: PartScorer
    private: PartScorer

    def heldout(self) -> PartScorer:
        return _load_heldout(self.task_dir)


_heldout_cache: dict[Path, PartScorer] = {}
_heldout_lock = threading.Lock()


def _load_heldout(task_dir: Path) -> PartScorer:
    with _heldout_lock:
        if task_dir not in _heldout_cache:
            td = TaskDir(task_dir, heldout=True)
            where = f"held-out split of {task_dir}"
            if not (td.private / "test_labels.jsonl").is_file():
                raise UserError(f"{where} is missing (no private/heldout/test_labels.jsonl)")
            labels = np.asarray([row["label"] for row in td.test_labels()], dtype=np.int64)
            _heldout_cache[task_dir] = _part(labels, np.arange(len(labels)), td.baseline_predictions(), where)
        return _heldout_cache[task_dir]


def read_task_dir(task_dir: Path | str) -> tuple[TaskInfo, dict[str, Any]]:
    """Check a prepared task directory and return its info and the arrays the scorers need."""
    root = Path(task_dir).resolve()
    td = TaskDir(root).check(need_private=True)
    try:
        info = td.info()
        n_test = sum(1 for _ in td.test_inputs())
        rows = td.test_labels()
        baselines = td.baseline_predictions()
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise UserError(f"task directory {root} is malformed: {exc}") from None
    if len(rows) != n_test:
        raise UserError(f"task directory {root}: {len(rows)} test labels for {n_test} test inputs")
    try:
        labels = np.asarray([int(r["label"]) for r in rows], dtype=np.int64)
        parts = np.asarray([r.get("part", "public") for r in rows])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"task directory {root}: bad test_labels.jsonl row: {exc}") from None
    if len(labels) and (labels.min() < 0 or labels.max() >= len(info.label_space)):
        raise UserError(f"task directory {root}: a test label is outside the label space of {len(info.label_space)}")
    return info, {"root": root, "labels": labels, "parts": parts, "baselines": baselines, "n_test": n_test}


def load_task(task_id: int, name: str, task_dir: Path | str) -> LoadedTask:
    info, data = read_task_dir(task_dir)
    labels, parts = data["labels"], data["parts"]
    where = f"task {name!r} ({data['root']})"
    public = _part(labels, np.flatnonzero(parts == "public"), data["baselines"], f"{where}, public part")
    private = _part(labels, np.flatnonzero(parts == "private"), data["baselines"], f"{where}, private part")
    return LoadedTask(id=task_id, name=name, task_dir=data["root"], info=info, n_test=data["n_test"],
                      n_labels=len(info.label_space), public=public, private=private)


def check_predictions(data: Any, n_test: int, n_labels: int, max_predictions: int) -> np.ndarray:
    """Validate submitted predictions (a JSON list of label indices in test order); a UserError names the
    first bad item. Fast on the common case: one type pass, then vectorised range checks."""
    if not isinstance(data, list):
        raise UserError(f"predictions must be a JSON list of label indices, got {type(data).__name__}")
    if not data:
        raise UserError("predictions: the list is empty")
    if len(data) > max_predictions:
        raise UserError(f"predictions: {len(data)} items is over the cap of {max_predictions}")
    if set(map(type, data)) != {int}:  # one C-level pass; bool and float are their own types
        for i, v in enumerate(data):
            if type(v) is not int:
                shown = repr(v) if not isinstance(v, str) else json.dumps(v[:40])
                raise UserError(f"predictions: item {i} is {shown} ({type(v).__name__}), not an integer label index")
    if len(data) != n_test:
        raise UserError(f"predictions: {len(data)} predictions for {n_test} test inputs (one per line of test.jsonl)")
    try:
        arr = np.fromiter(data, dtype=np.int64, count=len(data))
    except OverflowError:
        arr = None
    if arr is None or arr.min() < 0 or arr.max() >= n_labels:
        bad = next(i for i, v in enumerate(data) if not 0 <= v < n_labels)
        raise UserError(f"predictions: item {bad} is {data[bad]}, outside the label space 0..{n_labels - 1}")
    return arr


def predictions_json(predictions: np.ndarray) -> str:
    """The canonical JSON text of predictions: ``[0,1,...]`` with no spaces."""
    if len(predictions) and predictions.max() < 10:  # one digit each: build the text without a Python loop
        return "[" + ",".join((predictions.astype(np.uint8) + 48).tobytes().decode("ascii")) + "]"
    return "[" + ",".join(map(str, predictions.tolist())) + "]"


def predictions_hash(predictions: np.ndarray, text: str | None = None) -> str:
    """sha256 of the canonical JSON text of the predictions, reproducible outside the lab as
    ``sha256(json.dumps(predictions, separators=(",", ":")))``."""
    text = predictions_json(predictions) if text is None else text
    return hashlib.sha256(text.encode()).hexdigest()
