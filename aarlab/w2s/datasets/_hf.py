"""Hugging Face datasets of the reference (GPU) setup, through ``datasets.load_dataset``.

- ``helpsteer2``: pairwise chat preference in the HelpSteer2 format, label ``A`` or ``B`` (the better
  response). Rows are either preference pairs ``{prompt, response_1, response_2, preference_strength}``
  (negative strength: response 1 is better; ties are dropped) or per-response ratings
  ``{prompt, response, helpfulness, ...}``, paired here by prompt.
- ``candidate-answers``: a math or code problem with a candidate answer, label ``True`` if it is correct.
  Rows ``{question|problem|prompt, answer|candidate|solution|completion, label|is_correct}``.

The argument is a hub id (``nvidia/HelpSteer2``) or a local ``.jsonl``/``.json``/``.parquet`` file in the same
format; ``?split=`` and ``?data_dir=`` pass through to ``load_dataset``.
"""

from __future__ import annotations

import random
from itertools import combinations
from pathlib import Path

from aarlab.errors import UserError, require
from aarlab.w2s.datasets._local import label_index
from aarlab.w2s.datasets._registry import Example, dataset

_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def hf_rows(source: str, options: dict[str, str], default_data_dir: str | None = None) -> list[dict]:
    """Rows of a hub dataset or a local file, as plain dicts."""
    datasets = require("datasets", "hf")
    split = options.get("split", "train")
    path = Path(source).expanduser()
    try:
        if path.suffix in _FILE_BUILDERS:
            if not path.is_file():
                raise UserError(f"no such file: {path}")
            ds = datasets.load_dataset(_FILE_BUILDERS[path.suffix], data_files=str(path), split="train")
        else:
            ds = datasets.load_dataset(source, data_dir=options.get("data_dir", default_data_dir), split=split)
    except UserError:
        raise
    except Exception as exc:  # the hub client raises many kinds (offline, gated, missing split)
        raise UserError(f"cannot load Hugging Face dataset {source!r}: {type(exc).__name__}: {exc}") from None
    return [dict(row) for row in ds]


def _render_pair(prompt: str, a: str, b: str) -> str:
    return f"Conversation:\n{prompt.strip()}\n\nResponse A:\n{a.strip()}\n\nResponse B:\n{b.strip()}\n\nWhich response is better?"


@dataset("helpsteer2", example="helpsteer2:nvidia/HelpSteer2")
def load_helpsteer2(argument: str | None, options: dict[str, str], seed: int) -> list[Example]:
    """Pairwise chat preference in the HelpSteer2 format (label A or B)."""
    source = argument or "nvidia/HelpSteer2"
    is_hub_default = not Path(source).suffix
    rows = hf_rows(source, options, default_data_dir="preference" if is_hub_default else None)
    space = ("A", "B")
    pairs: list[tuple[str, str, str, int]] = []  # prompt, first, second, index of the better one
    if rows and "preference_strength" in rows[0]:
        for row in rows:
            strength = row["preference_strength"]
            if strength is None or strength == 0:
                continue
            pairs.append((row["prompt"], row["response_1"], row["response_2"], 0 if strength < 0 else 1))
    elif rows and "response" in rows[0] and "helpfulness" in rows[0]:
        by_prompt: dict[str, list[dict]] = {}
        for row in rows:
            by_prompt.setdefault(row["prompt"], []).append(row)
        for prompt, group in by_prompt.items():
            for r1, r2 in combinations(group, 2):
                if r1["helpfulness"] != r2["helpfulness"]:
                    pairs.append((prompt, r1["response"], r2["response"], 0 if r1["helpfulness"] > r2["helpfulness"] else 1))
    else:
        keys = sorted(rows[0]) if rows else []
        raise UserError(f"{source}: not in the HelpSteer2 format (columns {keys}); need prompt + response_1/response_2/"
                        "preference_strength, or prompt + response/helpfulness")
    out = []
    for i, (prompt, first, second, better) in enumerate(pairs):
        # Swap the order half of the time (seeded) so that position carries no signal.
        if random.Random(f"{seed}:hs2:{i}").random() < 0.5:
            first, second, better = second, first, 1 - better
        out.append(Example(f"hs2/{i}", _render_pair(prompt, first, second), better, space,
                           {"prompt": prompt, "response_a": first, "response_b": second}))
    return out


_QUESTION_KEYS = ("question", "problem", "prompt")
_ANSWER_KEYS = ("answer", "candidate", "candidate_answer", "solution", "completion")
_LABEL_KEYS = ("label", "is_correct", "correct")


def _first_key(row: dict, keys: tuple[str, ...], what: str, source: str) -> str:
    for key in keys:
        if key in row:
            return key
    raise UserError(f"{source}: rows need a {what} column (one of {', '.join(keys)}); got {sorted(row)}")


@dataset("candidate-answers", example="candidate-answers:data/math_candidates.jsonl")
def load_candidate_answers(argument: str | None, options: dict[str, str], seed: int) -> list[Example]:
    """True/False: is a candidate answer to a math or code problem correct?"""
    if not argument:
        raise UserError("say where the candidates are: candidate-answers:<hub id or file>")
    rows = hf_rows(argument, options)
    if not rows:
        raise UserError(f"{argument} has no rows")
    q_key = _first_key(rows[0], _QUESTION_KEYS, "question", argument)
    a_key = _first_key(rows[0], _ANSWER_KEYS, "answer", argument)
    y_key = _first_key(rows[0], _LABEL_KEYS, "label", argument)
    space = ("False", "True")
    out = []
    for i, row in enumerate(rows):
        question, answer = str(row[q_key]).strip(), str(row[a_key]).strip()
        text = f"Problem:\n{question}\n\nCandidate answer:\n{answer}\n\nIs the candidate answer correct?"
        out.append(Example(str(row.get("id", f"cand/{i}")), text, label_index(row[y_key], space, f"{argument}: row {i + 1}"),
                           space, {"question": question, "answer": answer}))
    return out
