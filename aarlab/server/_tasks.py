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
from aarlab.w2s.scoring import PartScorer
from aarlab.w2s.taskdir import TaskDir, TaskInfo, validate_predictions


def _part(labels: np.ndarray, index: np.ndarray, baselines: dict[str, list[list[int]]], where: str) -> PartScorer:
    """The scorer of one part; a UserError when the part is empty or its PGR is undefined."""
    scorer = PartScorer(labels, baselines.get("weak"), baselines.get("ceiling"), index, where)
    if scorer.gap <= 0:
        raise UserError(f"{where}: the strong ceiling ({scorer.ceiling_acc:.3f}) does not beat the weak teacher "
                        f"({scorer.weak_acc:.3f}), so PGR is undefined")
    return scorer


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
            _heldout_cache[task_dir] = _part(labels, None, td.baseline_predictions(), where)
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
    """Validate one seed's submitted predictions with ``w2s.taskdir.validate_predictions`` (the one validator)
    after the server's cap on their number; return them as an int64 array."""
    if isinstance(data, list) and len(data) > max_predictions:
        raise UserError(f"predictions: {len(data)} items is over the cap of {max_predictions}")
    return np.asarray(validate_predictions(data, n_test, n_labels), dtype=np.int64)


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
