"""What every method shares: the contract's arguments, reading the data dir, writing predictions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aarlab.errors import UserError
from aarlab.paths import atomic_write_text
from aarlab.w2s.taskdir import TaskInfo, read_jsonl


@dataclass
class MethodData:
    """A method's view of a task: public info, weak-labelled inputs, test inputs."""

    info: TaskInfo
    unlabel_texts: list[str]
    weak_soft_labels: np.ndarray  # [n, n_labels]
    test_texts: list[str]

    def strong(self, name: str | None = None):
        """A fresh strong model (or ``name``) with the task's training settings for it."""
        from aarlab.w2s.models import get_model

        name = name or self.info.strong_model
        overrides = self.info.extra.get("model_overrides", {}).get(name, {})
        return get_model(name, self.info.label_space, **overrides)

    def intermediate_name(self) -> str:
        from aarlab.w2s.models import intermediate_for

        return self.info.extra.get("intermediate_model") or intermediate_for(self.info.strong_model)


def row_text(row: dict, info: TaskInfo) -> str:
    if "text" in row:
        return str(row["text"])
    return "\n".join(f"{field}: {row[field]}" for field in info.input_fields if field in row)


def load_data_dir(data_dir: Path | str) -> MethodData:
    """Read ``task.json``, ``train_unlabel.jsonl`` and ``test.jsonl`` (a task root's ``public/`` works too)."""
    root = Path(data_dir)
    if not (root / "task.json").is_file() and (root / "public" / "task.json").is_file():
        root = root / "public"
    for name in ("task.json", "train_unlabel.jsonl", "test.jsonl"):
        if not (root / name).is_file():
            raise UserError(f"data dir {data_dir} has no {name}")
    info = TaskInfo.model_validate_json((root / "task.json").read_text())
    unlabel, test = read_jsonl(root / "train_unlabel.jsonl"), read_jsonl(root / "test.jsonl")
    soft = np.asarray([row["weak_soft_label"] for row in unlabel], dtype=np.float32)
    if soft.ndim != 2 or soft.shape[1] != len(info.label_space):
        raise UserError(f"weak_soft_label rows in {root} do not match the label space {info.label_space}")
    return MethodData(info, [row_text(r, info) for r in unlabel], soft, [row_text(r, info) for r in test])


def hard(probs: np.ndarray) -> np.ndarray:
    """One-hot targets from probabilities."""
    return np.eye(probs.shape[1], dtype=np.float32)[probs.argmax(axis=1)]


def write_predictions(path: Path | str, probs: np.ndarray) -> None:
    atomic_write_text(Path(path), json.dumps([int(i) for i in np.asarray(probs).argmax(axis=1)]))


def run_method(description: str, method: Callable[[MethodData, argparse.Namespace], np.ndarray],
               add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
               argv: list[str] | None = None) -> None:
    """Parse the contract's arguments, run ``method`` (it returns test probabilities), write predictions."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", required=True, help="task public dir: task.json, train_unlabel.jsonl, test.jsonl")
    parser.add_argument("--out", required=True, help="where to write predictions (JSON list of label indices)")
    parser.add_argument("--seed", type=int, default=0)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        data = load_data_dir(args.data_dir)  # before importing torch, so a wrong dir fails fast
        from aarlab.w2s.train import seed_everything

        seed_everything(args.seed)
        probs = method(data, args)
        if len(probs) != len(data.test_texts):
            raise RuntimeError(f"method produced {len(probs)} predictions for {len(data.test_texts)} inputs")
        write_predictions(args.out, probs)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
