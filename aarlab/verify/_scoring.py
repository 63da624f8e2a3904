"""Scoring re-run predictions on hidden labels: through the lab server, or straight from a task directory.

The verifier never shows labels to the method: predictions come out of the sandbox, and only then are they
scored here, on the host, against labels the sandbox never had mounted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from aarlab.w2s.scoring import Score


class Scorer(Protocol):
    """Scores one list of predictions (in ``test.jsonl`` order of the data the method was given)."""

    def score(self, predictions: Sequence[int]) -> Score: ...


class ServerHeldoutScorer:
    """Held-out scoring by the lab server (``POST /api/admin/score``): labels stay in the server process."""

    def __init__(self, client, task: str):
        self.client = client
        self.task = task

    def score(self, predictions: Sequence[int]) -> Score:
        return Score.model_validate(self.client.score_heldout(self.task, list(predictions)).model_dump())


class TaskDirScorer:
    """Scoring from a prepared task dir on disk: its held-out split, or its main test split (all parts)."""

    def __init__(self, task_dir: Path | str, heldout: bool = True, part: str | None = None):
        from aarlab.w2s.taskdir import TaskDir

        self.task = TaskDir(task_dir, heldout=heldout).check()
        rows = self.task.test_labels()
        self.labels = [int(r["label"]) for r in rows]
        self.mask = None if part is None else [r.get("part") == part for r in rows]
        baselines = self.task.baseline_predictions()
        self.weak, self.ceiling = baselines["weak"], baselines["ceiling"]

    @property
    def public_dir(self) -> Path:
        return self.task.public

    def score(self, predictions: Sequence[int]) -> Score:
        from aarlab.w2s.scoring import score

        return score(list(predictions), self.labels, self.weak, self.ceiling, self.mask)
