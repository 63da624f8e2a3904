"""A synthetic task directory in the exact layout of ``aarlab w2s prepare``, made in milliseconds.

For tests of the machinery around the library (server, agents, verifier, monitors, dashboard): texts are
bags of sentiment words whose majority decides the label; the "weak" and "ceiling" baseline predictions are
the labels with a fixed share flipped. No model is trained, so nothing here is a research result. ``task.json``
names the hashed bag-of-words test models (``hashbow-weak`` → ``hashbow-strong``), so the known methods
(``python -m aarlab.w2s.methods.<name>``) run on it in a few seconds on CPU.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from aarlab.w2s.scoring import mean_se
from aarlab.w2s.taskdir import FixedBaselines, Stat, TaskInfo, write_jsonl

POSITIVE = ["good", "great", "fine", "happy", "lovely", "superb", "nice", "bright"]
NEGATIVE = ["bad", "awful", "sad", "poor", "grim", "dull", "nasty", "bleak"]
NEUTRAL = ["the", "a", "movie", "day", "food", "service", "was", "and", "very", "it"]


def _example(rng: random.Random, idx: str) -> dict:
    label = rng.randrange(2)
    major, minor = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
    words = rng.choices(major, k=3) + rng.choices(minor, k=rng.randrange(3)) + rng.choices(NEUTRAL, k=5)
    rng.shuffle(words)
    return {"id": idx, "text": " ".join(words), "label": label}


def _noisy(labels: list[int], accuracy: float, rng: random.Random) -> list[int]:
    return [y if rng.random() < accuracy else 1 - y for y in labels]


def _write_split(public: Path, private: Path, name: str, n_unlabel: int, n_test: int, rng: random.Random,
                 weak_acc: float, ceiling_acc: float, seeds: int, prefix: str) -> None:
    unlabel = [_example(rng, f"{prefix}u{i}") for i in range(n_unlabel)]
    test = [_example(rng, f"{prefix}t{i}") for i in range(n_test)]
    weak_unlabel = _noisy([e["label"] for e in unlabel], weak_acc, rng)
    rows = []
    for ex, w in zip(unlabel, weak_unlabel, strict=True):
        p = round(rng.uniform(0.55, 0.95), 3)
        rows.append({"id": ex["id"], "text": ex["text"], "weak_soft_label": [1 - p, p] if w else [p, 1 - p]})
    write_jsonl(public / "train_unlabel.jsonl", rows)
    write_jsonl(public / "test.jsonl", [{"id": e["id"], "text": e["text"]} for e in test])
    write_jsonl(private / "train_unlabel_labels.jsonl", [{"id": e["id"], "label": e["label"]} for e in unlabel])
    labels = [e["label"] for e in test]
    write_jsonl(private / "test_labels.jsonl",
                [{"id": e["id"], "label": e["label"], "part": "public" if i % 2 == 0 else "private"}
                 for i, e in enumerate(test)])
    weak = [_noisy(labels, weak_acc, rng) for _ in range(seeds)]
    ceiling = [_noisy(labels, ceiling_acc, rng) for _ in range(seeds)]
    (private / "baseline_predictions.json").write_text(json.dumps({"weak": weak, "ceiling": ceiling}))
    acc = lambda preds: sum(p == y for p, y in zip(preds, labels, strict=True)) / len(labels)  # noqa: E731
    w_mean, w_se = mean_se([acc(p) for p in weak])
    c_mean, c_se = mean_se([acc(p) for p in ceiling])
    info = TaskInfo(
        name=name, dataset="synthetic:sentiment", label_space=["negative", "positive"],
        weak_model="hashbow-weak", strong_model="hashbow-strong",
        sizes={"train_unlabel": n_unlabel, "test": n_test}, seed=0,
        fixed=FixedBaselines(weak_acc=Stat(mean=w_mean, se=w_se, n=seeds), ceiling_acc=Stat(mean=c_mean, se=c_se, n=seeds)),
        description="Synthetic sentiment: is the bag of words mostly positive?",
    )
    (public / "task.json").write_text(info.model_dump_json(indent=2))


def write_synthetic_task(root: Path | str, n_unlabel: int = 200, n_test: int = 200, seed: int = 0,
                         weak_acc: float = 0.7, ceiling_acc: float = 0.9, seeds: int = 3,
                         name: str = "synthetic") -> Path:
    """Write a complete task directory (with a held-out split) under ``root`` and return ``root``."""
    root = Path(root)
    rng = random.Random(seed)
    public, private = root / "public", root / "private"
    for d in (public, private, private / "heldout" / "public"):
        d.mkdir(parents=True, exist_ok=True)
    train_label = [_example(rng, f"l{i}") for i in range(n_unlabel // 2)]
    write_jsonl(private / "train_label.jsonl", train_label)
    _write_split(public, private, name, n_unlabel, n_test, rng, weak_acc, ceiling_acc, seeds, "")
    _write_split(private / "heldout" / "public", private / "heldout", name, n_unlabel, n_test, rng,
                 weak_acc, ceiling_acc, seeds, "h")
    return root
