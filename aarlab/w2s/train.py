"""The one training loop every torch model of the library uses, and batched inference.

A model hands the loop a ``module`` (``module(batch) -> logits [batch, n_labels]``) and a ``collate``
function (``collate(indices) -> batch``, e.g. padding pre-tokenized inputs); the loop does seeded
shuffling, the loss ``(logits, targets, step_frac)`` and AdamW steps with a linear warmup/decay schedule.
Nothing else happens per step, so its speed is that of a bare torch loop (``benchmarks/w2s_train.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from aarlab.w2s.losses import Loss

Collate = Callable[[torch.Tensor], Any]


@dataclass
class TrainConfig:
    """Optimisation settings; every model of the registry has its own defaults."""

    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_frac: float = 0.1
    eval_batch_size: int = 128
    max_grad_norm: float | None = 1.0
    # The forward passes' precision. "auto": bfloat16 autocast where the hardware computes it natively (a CUDA
    # GPU with bf16, or a CPU with AVX512-BF16/AMX, where a MiniLM fine-tune + inference is ≈ 1.7× faster at the
    # same accuracy), float32 elsewhere; "fp32" / "bf16" force one. Tiny models keep fp32: nothing to gain.
    precision: str = "fp32"


def autocast_dtype(precision: str = "auto", device: torch.device | str = "cpu") -> torch.dtype | None:
    """The autocast dtype of a model's forward passes (``None``: plain float32).

    ``AARLAB_PRECISION`` (``auto``, ``fp32``, ``bf16``) overrides a config's ``auto``, so that a user can pin
    numerics across machines without touching code. Whatever it resolves to is recorded by ``prepare`` in
    ``task.json``, and every run on one machine resolves it the same way, so a method, the fixed baselines
    and the verifier's re-runs share numerics.
    """
    import os

    if precision == "auto":
        precision = os.environ.get("AARLAB_PRECISION", "auto").strip().lower() or "auto"
    if precision not in ("auto", "fp32", "bf16"):
        from aarlab.errors import UserError

        raise UserError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    if precision == "fp32":
        return None
    kind = torch.device(device).type
    if precision == "bf16":
        return torch.bfloat16
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if kind == "cpu":
        native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or \
            getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        return torch.bfloat16 if native else None
    return None


def precision_name(precision: str = "auto", device: torch.device | str = "cpu") -> str:
    """What ``precision`` resolves to here: ``"bf16"`` or ``"fp32"`` (recorded in a prepared task.json)."""
    return "bf16" if autocast_dtype(precision, device) is not None else "fp32"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so that a run on CPU is repeatable."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batch_order(n: int, config: TrainConfig, seed: int, lengths: Sequence[int] | None = None,
                group: int = 16) -> list[torch.Tensor]:
    """The index batches of a whole training run: a seeded shuffle per epoch, a partial last epoch allowed.

    With ``lengths`` (tokens per input), each run of ``group`` batches of the shuffle is sorted by length
    before it is cut into batches, and the batches are shuffled again: padding shrinks (2-3x faster on
    short texts of mixed length) while every batch stays a random draw from a window of the shuffle.
    """
    generator = torch.Generator().manual_seed(seed)
    total_steps = max(1, math.ceil(n * config.epochs / config.batch_size))
    bs = config.batch_size
    batches: list[torch.Tensor] = []
    while len(batches) < total_steps:
        perm = torch.randperm(n, generator=generator)
        if lengths is None:
            batches.extend(perm[i:i + bs] for i in range(0, n, bs))
            continue
        lens = torch.as_tensor(lengths)
        epoch = []
        for start in range(0, n, bs * group):
            window = perm[start:start + bs * group]
            window = window[torch.sort(lens[window], stable=True).indices]
            epoch.extend(window[i:i + bs] for i in range(0, len(window), bs))
        batches.extend(epoch[i] for i in torch.randperm(len(epoch), generator=generator).tolist())
    return batches[:total_steps]


def _move(batch: Any, device: torch.device | str) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _move(v, device) for k, v in batch.items()}
    return batch


def train(
    module: torch.nn.Module,
    collate: Collate,
    targets: torch.Tensor,
    loss_fn: Loss,
    config: TrainConfig,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[float]:
    """Train ``module`` in place on ``targets`` (``[n, n_labels]`` probabilities); return the per-step losses.

    ``progress(step, total_steps)`` is called after each step when given.
    """
    n = targets.shape[0]
    if n == 0:
        from aarlab.errors import UserError

        raise UserError("no training examples")
    batches = batch_order(n, config, seed, getattr(collate, "lengths", None))
    params = [p for p in module.parameters() if p.requires_grad]
    # The fused kernel does the same update in one pass over the parameters: on a CPU it is ≈ 2.5× faster than
    # the default multi-tensor step, which otherwise costs a quarter of a MiniLM fine-tune (embedding matrix
    # included). Devices without a fused kernel fall back to the default.
    fused = torch.device(device).type in ("cpu", "cuda") and all(p.is_floating_point() for p in params)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
    total = len(batches)
    warmup = max(1, int(config.warmup_frac * total)) if config.warmup_frac > 0 else 0
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    targets = targets.to(device)
    dtype = autocast_dtype(config.precision, device)
    module.train()
    losses = []
    for step, idx in enumerate(batches):
        with torch.autocast(torch.device(device).type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            logits = module(_move(collate(idx), device))
        # The loss (and so its gradient's start) in float32 whatever the forward's precision.
        loss = loss_fn(logits.float(), targets[idx.to(device)], step / total)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, total)
    module.eval()
    return losses


@torch.no_grad()
def predict_proba(module: torch.nn.Module, collate: Collate, n: int, batch_size: int = 128,
                  device: torch.device | str = "cpu", precision: str = "fp32") -> torch.Tensor:
    """Class probabilities ``[n, n_labels]`` (float32, on CPU) for inputs ``0..n-1``.

    Inputs are batched in order of length when the collate function knows lengths (less padding).
    """
    module.eval()
    lengths = getattr(collate, "lengths", None)
    order = torch.sort(torch.as_tensor(lengths), stable=True).indices if lengths is not None else torch.arange(n)
    dtype = autocast_dtype(precision, device)
    out = torch.zeros(0)
    # One autocast region for all batches: the weights are cast to bf16 once, not once per batch.
    with torch.autocast(torch.device(device).type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            probs = torch.softmax(module(_move(collate(idx), device)).float(), dim=-1).cpu()
            if start == 0:
                out = torch.zeros((n, probs.shape[1]))
            out[idx] = probs
    return out
