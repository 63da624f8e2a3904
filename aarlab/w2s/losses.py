"""Training losses, each a small function ``(logits, targets, step_frac) -> loss``.

``targets`` are probability vectors (soft labels, or one-hot hard labels), shape ``[batch, n_labels]``;
``step_frac`` is the fraction of training done, in [0, 1], for losses that change over training.
Follows openai/weak-to-strong's ``loss.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from aarlab.errors import UserError

Loss = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def xent(logits: torch.Tensor, targets: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
    """Cross entropy against soft targets (the weak teacher's probabilities as they are)."""
    return F.cross_entropy(logits.float(), targets.float())


def hard_xent(logits: torch.Tensor, targets: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
    """Cross entropy against the argmax of the targets (the weak teacher's hard labels)."""
    return F.cross_entropy(logits.float(), targets.argmax(dim=-1))


def logconf(aux_coef: float = 0.5, warmup_frac: float = 0.2) -> Loss:
    """Burns et al.'s auxiliary confidence loss: mix the weak targets with the student's own hardened predictions.

    The student's predictions are hardened with a threshold chosen so that its predicted class balance
    matches the weak labels' balance in the batch; the mixing weight ramps up to ``aux_coef`` over the first
    ``warmup_frac`` of training. Binary label spaces use the quantile threshold of the paper; larger ones
    fall back to the argmax.
    """

    def loss(logits: torch.Tensor, targets: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        coef = aux_coef * (min(1.0, step_frac / warmup_frac) if warmup_frac > 0 else 1.0)
        preds = torch.softmax(logits, dim=-1)
        if logits.shape[-1] == 2:
            threshold = torch.quantile(preds[:, 0], targets.mean(dim=0)[1])
            hardened = torch.stack([(preds[:, 0] >= threshold), (preds[:, 0] < threshold)], dim=1).float()
        else:
            hardened = F.one_hot(preds.argmax(dim=-1), logits.shape[-1]).float()
        mixed = targets * (1 - coef) + hardened.detach() * coef
        return F.cross_entropy(logits, mixed)

    return loss


def product(aux_coef: float = 0.5, warmup_frac: float = 0.2) -> Loss:
    """Product loss: cross entropy against the normalised product of the weak targets and the student's own
    (detached) predictions raised to a weight, so that the student keeps what it already believes where the
    weak teacher is unsure. The weight ramps up to ``aux_coef`` over the first ``warmup_frac`` of training
    (weight 0 is plain ``xent``).
    """

    def loss(logits: torch.Tensor, targets: torch.Tensor, step_frac: float = 0.0) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        coef = aux_coef * (min(1.0, step_frac / warmup_frac) if warmup_frac > 0 else 1.0)
        student = torch.softmax(logits, dim=-1).detach()
        combined = targets.clamp_min(1e-9) * student.clamp_min(1e-9) ** coef
        return F.cross_entropy(logits, combined / combined.sum(dim=-1, keepdim=True))

    return loss


LOSSES: dict[str, Callable[[], Loss]] = {
    "xent": lambda: xent,
    "hard": lambda: hard_xent,
    "logconf": logconf,
    "product": product,
}


def get_loss(name: str) -> Loss:
    if name not in LOSSES:
        raise UserError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    return LOSSES[name]()
