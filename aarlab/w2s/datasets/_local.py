"""Datasets from local files, and a generated one for tests and demos."""

from __future__ import annotations

import json
import random
from pathlib import Path

from aarlab.errors import UserError
from aarlab.w2s.datasets._registry import Example, dataset


def label_space_of(rows: list[dict], source: str, key: str = "label") -> tuple[str, ...]:
    """The label space written in the rows (``label_space``) or inferred from their labels."""
    declared = {tuple(r["label_space"]) for r in rows if "label_space" in r}
    if len(declared) > 1:
        raise UserError(f"{source}: rows declare different label spaces")
    if declared:
        return next(iter(declared))
    labels = {r[key] for r in rows}
    if all(isinstance(v, bool) for v in labels):
        return ("False", "True")
    if all(isinstance(v, int) for v in labels):
        return tuple(str(i) for i in range(max(labels) + 1))
    return tuple(sorted(str(v) for v in labels))


def label_index(value, label_space: tuple[str, ...], where: str) -> int:
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        if not 0 <= value < len(label_space):
            raise UserError(f"{where}: label {value} is outside the label space {list(label_space)}")
        return value
    if str(value) not in label_space:
        raise UserError(f"{where}: label {value!r} is not in the label space {list(label_space)}")
    return label_space.index(str(value))


def read_jsonl_file(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{n}: expected a JSON object per line")
            rows.append(row)
    return rows


@dataset("jsonl", example="jsonl:data/reviews.jsonl")
def load_jsonl(argument: str | None, options: dict[str, str], seed: int) -> list[Example]:
    """Local JSON lines: {"text", "label"} per line (label: index or name; optional "id", "label_space")."""
    if not argument:
        raise UserError("say which file: jsonl:<path>")
    path = Path(argument).expanduser()
    rows = read_jsonl_file(path)
    if not rows:
        raise UserError(f"{path} has no rows")
    for n, row in enumerate(rows, 1):
        if "text" not in row or "label" not in row:
            raise UserError(f"{path}: row {n} needs both 'text' and 'label'")
    space = label_space_of(rows, str(path))
    if len(space) < 2:
        raise UserError(f"{path}: all rows have the same label {space[0]!r}; a task needs two or more")
    return [
        Example(str(row.get("id", f"{path.stem}/{n}")), str(row["text"]),
                label_index(row["label"], space, f"{path}: row {n}"), space,
                {k: v for k, v in row.items() if k not in ("id", "label", "label_space")})
        for n, row in enumerate(rows, 1)
    ]


POSITIVE = ["good", "great", "fine", "happy", "lovely", "superb", "nice", "bright", "warm", "fresh"]
NEGATIVE = ["bad", "awful", "sad", "poor", "grim", "dull", "nasty", "bleak", "cold", "stale"]
NEUTRAL = ["the", "a", "movie", "day", "food", "service", "was", "and", "very", "it", "room", "staff"]


@dataset("synthetic", example="synthetic:2000")
def load_synthetic(argument: str | None, options: dict[str, str], seed: int) -> list[Example]:
    """Generated bags of sentiment words (label: are they mostly positive?); for tests and demos."""
    try:
        n = int(argument) if argument else 1000
    except ValueError:
        raise UserError(f"synthetic:<n> takes a number of examples, not {argument!r}") from None
    rng = random.Random(f"synthetic:{seed}")
    space = ("negative", "positive")
    out = []
    for i in range(n):
        label = rng.randrange(2)
        major, minor = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        k_major = rng.randint(2, 4)
        words = rng.choices(major, k=k_major) + rng.choices(minor, k=rng.randint(0, k_major - 1))
        words += rng.choices(NEUTRAL, k=rng.randint(3, 7))
        rng.shuffle(words)
        out.append(Example(f"syn/{i}", " ".join(words), label, space))
    return out
