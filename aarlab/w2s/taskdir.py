"""The layout of a prepared weak-to-strong task directory, and the code that reads it.

``aarlab w2s prepare`` writes it; the lab server reads ``private/``; sandboxes see ``public/`` only::

    DIR/
      public/                       what an agent may see (mounted read-only into its sandbox)
        task.json                   TaskInfo: name, dataset, label_space, models, sizes, fixed baselines
        train_unlabel.jsonl         {"id", "text" (or structured fields), "weak_soft_label": [p_0, ..., p_k]}
        test.jsonl                  {"id", "text" ...}: inputs only, public and private parts mixed
      private/                      read by the server and the verifier's scorer only
        train_label.jsonl           {"id", "text", "label"}: what trained the weak teacher
        train_unlabel_labels.jsonl  {"id", "label"}: ground truth of train_unlabel
        test_labels.jsonl           {"id", "label", "part": "public" | "private"}
        baseline_predictions.json   {"weak": [[int] per seed], "ceiling": [[int] per seed]} in test order
        heldout/                    a disjoint split for verification, same shape as above
          public/{task.json, train_unlabel.jsonl, test.jsonl}
          test_labels.jsonl
          baseline_predictions.json

Predictions (what a method writes and an agent submits) are a JSON list of label indices into
``label_space``, one per line of ``test.jsonl`` and in its order; ``{"predictions": [...]}`` is accepted too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from aarlab.errors import UserError


class Stat(BaseModel):
    """A mean with its standard error over ``n`` seeds."""

    mean: float
    se: float = 0.0
    n: int = 1


class FixedBaselines(BaseModel):
    """Accuracies of the weak teacher and the strong ceiling on the test split (over seeds)."""

    weak_acc: Stat
    ceiling_acc: Stat


class TaskInfo(BaseModel):
    """``public/task.json``: everything about a task an agent may know."""

    name: str
    dataset: str
    label_space: list[str]
    input_fields: list[str] = Field(default_factory=lambda: ["text"])
    weak_model: str
    strong_model: str
    sizes: dict[str, int] = Field(default_factory=dict)
    seed: int = 0
    fixed: FixedBaselines
    description: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


class TaskDir:
    """A prepared task directory (or its ``heldout`` twin): paths and loaders, with clear errors."""

    PUBLIC_FILES = ("task.json", "train_unlabel.jsonl", "test.jsonl")

    def __init__(self, root: Path | str, heldout: bool = False):
        self.root = Path(root)
        self.heldout = heldout
        self.private = self.root / "private" / "heldout" if heldout else self.root / "private"
        self.public = self.private / "public" if heldout else self.root / "public"

    def check(self, need_private: bool = True) -> TaskDir:
        """Raise a UserError naming the first missing file."""
        if not self.root.is_dir():
            raise UserError(f"task directory {self.root} does not exist (make one with `aarlab w2s prepare`)")
        needed = [self.public / name for name in self.PUBLIC_FILES]
        if need_private:
            needed += [self.private / "test_labels.jsonl", self.private / "baseline_predictions.json"]
        for path in needed:
            if not path.is_file():
                raise UserError(f"task directory {self.root} is missing {path.relative_to(self.root)}")
        return self

    def info(self) -> TaskInfo:
        return TaskInfo.model_validate_json((self.public / "task.json").read_text())

    def test_inputs(self) -> list[dict]:
        return read_jsonl(self.public / "test.jsonl")

    def train_unlabel(self) -> list[dict]:
        return read_jsonl(self.public / "train_unlabel.jsonl")

    def test_labels(self) -> list[dict]:
        return read_jsonl(self.private / "test_labels.jsonl")

    def baseline_predictions(self) -> dict[str, list[list[int]]]:
        return json.loads((self.private / "baseline_predictions.json").read_text())


def load_predictions(path: Path | str, expected_len: int | None = None, n_labels: int | None = None) -> list[int]:
    """Read a predictions file and validate it; a UserError says exactly what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"predictions file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"predictions file {path} is not valid JSON: {exc}") from None
    return validate_predictions(data, expected_len, n_labels, source=str(path))


def validate_predictions(data: Any, expected_len: int | None, n_labels: int | None, source: str = "predictions") -> list[int]:
    """Check that ``data`` is a list of label indices of the right length; return it as ints.

    The one validator of predictions (method outputs, the verifier, the lab server). ``{"predictions": [...]}``
    is unwrapped, as a method's output file may hold it. Checked in C on the common case (one pass over the
    item types, then vectorised range checks); a UserError names the first bad item.
    """
    import numpy as np

    if isinstance(data, dict) and "predictions" in data:
        data = data["predictions"]
    if not isinstance(data, list):
        raise UserError(f"{source}: expected a JSON list of label indices, got {type(data).__name__}")
    if not data:
        raise UserError(f"{source}: the list of predictions is empty")
    if set(map(type, data)) != {int}:  # bool and float are types of their own
        for i, value in enumerate(data):
            if type(value) is not int:
                shown = repr(value[:40] if isinstance(value, str) else value)[:80]
                raise UserError(f"{source}: prediction {i} is {shown}, not an integer label index")
    if n_labels is not None:
        try:
            array = np.fromiter(data, dtype=np.int64, count=len(data))
            in_range = array.min() >= 0 and array.max() < n_labels
        except OverflowError:
            in_range = False
        if not in_range:
            i = next(i for i, value in enumerate(data) if not 0 <= value < n_labels)
            raise UserError(f"{source}: prediction {i} is {data[i]}, outside the label space 0..{n_labels - 1}")
    if expected_len is not None and len(data) != expected_len:
        raise UserError(f"{source}: {len(data)} predictions for {expected_len} test inputs")
    return data
