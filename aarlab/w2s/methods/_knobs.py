"""The configurable method's knobs: one documented schema, read from ``config.json``.

Every knob's default leaves training exactly as ``vanilla`` does it (cross entropy on the weak soft labels,
the strong model's own training settings), so a config holds only what a variant changes. A knob that is
``None`` keeps the model's default (``TrainConfig`` of the strong model, plus the task's overrides).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aarlab.errors import UserError


class Knobs(BaseModel):
    """A configurable weak-to-strong method: weak-label transforms, then the strong model's training."""

    model_config = ConfigDict(extra="forbid")

    # ---- the loss
    loss: Literal["xent", "hard", "logconf", "product"] = Field(
        "xent", description="xent: cross entropy on the (transformed) soft labels; hard: on their argmax; "
                            "logconf: Burns et al.'s auxiliary confidence loss; product: cross entropy against "
                            "the normalised product of the weak labels and the student's own predictions")
    aux_coef: float = Field(0.5, ge=0, le=1, description="logconf/product: final weight of the student's term")
    aux_warmup_frac: float = Field(0.2, ge=0, le=1,
                                   description="logconf/product: share of training over which that weight "
                                               "ramps up linearly from 0")
    # ---- weak-label transforms, applied in this order
    keep_fraction: float = Field(1.0, gt=0, le=1,
                                 description="confidence filter: per weak-predicted class, keep this share "
                                             "of examples with the most confident weak labels")
    prior_correction: float = Field(0.0, ge=0, le=1,
                                    description="class-prior correction: divide each weak soft label by the "
                                                "weak labels' class prior to this power, then renormalise "
                                                "(1 = one EM step to a balanced prior)")
    sharpen_temperature: float = Field(1.0, gt=0, le=10,
                                       description="raise weak soft labels to 1/T and renormalise: T < 1 "
                                                   "sharpens, T > 1 flattens")
    smooth: float = Field(0.0, ge=0, le=1, description="mix the weak soft labels with uniform by this weight")
    # ---- optimisation (None: the strong model's default)
    lr: float | None = Field(None, gt=0, le=1, description="peak learning rate of AdamW")
    epochs: float | None = Field(None, gt=0, le=100, description="passes over the training examples")
    batch_size: int | None = Field(None, ge=1, le=4096, description="examples per optimiser step")
    warmup_frac: float | None = Field(None, ge=0, le=1,
                                      description="share of steps with a linear learning-rate warm-up")
    weight_decay: float | None = Field(None, ge=0, le=1, description="AdamW weight decay")
    # ---- training length
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (fewer "
                                                           "epochs); a cheap, short trial")
    subsample: float = Field(1.0, gt=0, le=1,
                             description="train on this seeded share of the weak-labelled examples "
                                         "(drawn with the run's seed): a cheap trial")

    def train_overrides(self) -> dict[str, float | int]:
        """The ``TrainConfig`` fields this config sets (the others keep the model's defaults)."""
        names = ("lr", "epochs", "batch_size", "warmup_frac", "weight_decay")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def load_knobs(path: str | Path | None) -> Knobs:
    """Read a config file (a JSON object of knobs); no file means every default (``vanilla``)."""
    if path is None:
        return Knobs()
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read config {path}: {exc}") from None
    try:
        return Knobs.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"config {path}: {exc}") from None


def knob_table() -> str:
    """A Markdown table of every knob, its default and what it does (for docs/search.md)."""
    lines = ["| knob | default | what it does |", "|---|---|---|"]
    for name, field in Knobs.model_fields.items():
        lines.append(f"| `{name}` | `{json.dumps(field.default)}` | {field.description} |")
    return "\n".join(lines)


__all__ = ["Knobs", "knob_table", "load_knobs"]
