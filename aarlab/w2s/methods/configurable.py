"""A configurable weak-to-strong method: the known methods' components as knobs in one ``config.json``.

    python -m aarlab.w2s.methods.configurable --data-dir D --out predictions.json --seed S [--config config.json]

The knobs (``aarlab.w2s.methods._knobs.Knobs``, tabled in docs/search.md) transform the weak soft labels —
a seeded subsample, a per-class confidence filter, a class-prior correction, sharpening, smoothing, in that
order — and then set the strong model's loss (soft or hard cross entropy, the auxiliary confidence loss,
the product loss, with their weight schedules) and its training (learning rate, epochs, batch size, warm-up,
weight decay, a cap on optimiser steps). With no config, or an empty one, it is ``vanilla`` exactly: the same
predictions for the same seed. The config file travels with the method in a snapshot, so the verifier re-runs
the same variant.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from aarlab.w2s.losses import get_loss, logconf, product
from aarlab.w2s.methods._common import MethodData, run_method
from aarlab.w2s.methods._knobs import Knobs, load_knobs
from aarlab.w2s.methods.confident import confident_mask


def transform_weak_labels(knobs: Knobs, soft: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows kept, their transformed soft labels)``; at the defaults every row, its labels untouched."""
    rows = np.arange(len(soft))
    if knobs.subsample < 1.0:
        n = max(2, int(round(knobs.subsample * len(soft))))
        # Sorted, so that the kept rows stay in file order as in a full run.
        rows = np.sort(np.random.default_rng(seed).choice(len(soft), size=min(n, len(soft)), replace=False))
    labels = soft[rows]
    if knobs.keep_fraction < 1.0:
        mask = confident_mask(labels, knobs.keep_fraction, None)
        rows, labels = rows[mask], labels[mask]
    if knobs.prior_correction > 0:
        prior = labels.mean(axis=0).clip(1e-9)
        labels = labels / (prior * len(prior)) ** knobs.prior_correction
        labels = labels / labels.sum(axis=1, keepdims=True)
    if knobs.sharpen_temperature != 1.0:
        labels = labels.clip(1e-9) ** (1.0 / knobs.sharpen_temperature)
        labels = labels / labels.sum(axis=1, keepdims=True)
    if knobs.smooth > 0:
        labels = (1 - knobs.smooth) * labels + knobs.smooth / labels.shape[1]
    return rows, labels.astype(np.float32)


def loss_of(knobs: Knobs):
    """The loss the knobs name: a name for the plain ones (as ``vanilla`` passes it), a callable otherwise."""
    if knobs.loss == "logconf":
        return logconf(aux_coef=knobs.aux_coef, warmup_frac=knobs.aux_warmup_frac)
    if knobs.loss == "product":
        return product(aux_coef=knobs.aux_coef, warmup_frac=knobs.aux_warmup_frac)
    get_loss(knobs.loss)  # a known name: fail here, not after the data is prepared
    return knobs.loss


def strong_model(data: MethodData, knobs: Knobs, n_train: int):
    """The task's strong model with the task's overrides, then the knobs' training settings on top."""
    from aarlab.w2s.models import get_model

    name = data.info.strong_model
    overrides = {**data.info.extra.get("model_overrides", {}).get(name, {}), **knobs.train_overrides()}
    strong = get_model(name, data.info.label_space, **overrides)
    if knobs.max_steps is not None and hasattr(strong, "config"):
        config = strong.config
        # Half a step of slack: the loop takes ceil(n * epochs / batch) steps, and float error must not add one.
        capped = (knobs.max_steps - 0.5) * config.batch_size / max(1, n_train)
        if capped < config.epochs:
            strong.config = replace(config, epochs=capped)
    return strong


def configurable(data: MethodData, args) -> np.ndarray:
    knobs = load_knobs(args.config)
    rows, labels = transform_weak_labels(knobs, data.weak_soft_labels, args.seed)
    texts = data.unlabel_texts if len(rows) == len(data.unlabel_texts) else [data.unlabel_texts[i] for i in rows]
    strong = strong_model(data, knobs, len(rows))
    strong.fit(texts, labels, loss=loss_of(knobs), seed=args.seed)
    return strong.predict_proba(data.test_texts)


def main(argv=None):
    run_method(__doc__.splitlines()[0], configurable,
               lambda p: p.add_argument("--config", default=None,
                                        help="a JSON file of knobs (see docs/search.md); none: vanilla"), argv)


__all__ = ["Knobs", "configurable", "load_knobs", "loss_of", "strong_model", "transform_weak_labels"]

if __name__ == "__main__":
    main()
