"""The classifier interface every model of the registry implements, and its torch base class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from aarlab.w2s.train import TrainConfig


class Classifier(ABC):
    """A text classifier over a fixed label space: train on (soft) targets, predict probabilities."""

    name: str
    label_space: tuple[str, ...]

    @abstractmethod
    def fit(self, texts: Sequence[str], targets: np.ndarray, loss="xent", seed: int = 0,
            progress: Callable[[int, int], None] | None = None) -> None:
        """Train a fresh model (seeded) on ``targets``: ``[n, n_labels]`` probabilities (one-hot for hard labels)."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, n_labels]`` class probabilities of the trained model."""

    @abstractmethod
    def zero_shot_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, n_labels]`` scores from the pretrained model's prior alone, with no training."""


class TorchClassifier(Classifier):
    """A classifier whose trainable part is a torch module, trained by ``aarlab.w2s.train.train``.

    Subclasses say how to build a fresh module (``build``) and how to turn texts into batches (``collate``).
    """

    default_config = TrainConfig()

    def __init__(self, label_space: tuple[str, ...], **overrides):
        self.label_space = tuple(label_space)
        self.config = replace(self.default_config, **overrides)
        self.device = "cpu"
        self.module = None

    @abstractmethod
    def build(self, seed: int):
        """A fresh module (pretrained body + new head seeded with ``seed``): ``module(batch) -> logits``."""

    @abstractmethod
    def collate(self, texts: Sequence[str]) -> Callable:
        """Prepare ``texts`` once (tokenize, embed) and return ``collate(indices) -> batch``."""

    def fit(self, texts, targets, loss="xent", seed=0, progress=None):
        import torch

        from aarlab.w2s.losses import get_loss
        from aarlab.w2s.train import seed_everything, train

        seed_everything(seed)
        loss_fn = get_loss(loss) if isinstance(loss, str) else loss
        self.module = self.build(seed).to(self.device)
        collate = self.collate(texts)
        train(self.module, collate, torch.as_tensor(np.asarray(targets), dtype=torch.float32), loss_fn,
              self.config, seed, device=self.device, progress=progress)

    def predict_proba(self, texts):
        from aarlab.w2s.train import predict_proba

        if self.module is None:
            raise RuntimeError(f"{self.name} is not trained yet")
        return predict_proba(self.module, self.collate(texts), len(texts), self.config.eval_batch_size,
                             self.device, self.config.precision).numpy()
