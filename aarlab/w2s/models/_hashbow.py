"""Hashed bag-of-words models: tiny, pure torch, trained in milliseconds; for tests and the demo.

Words are hashed (crc32, stable across runs) into a fixed number of buckets; a mean of bucket embeddings
feeds a linear head. Few buckets make a weak model (words collide), many make a strong one. They have no
pretrained prior, so their zero-shot scores are chance level by construction.
"""

from __future__ import annotations

import re
import zlib

from aarlab.w2s.models._base import TorchClassifier
from aarlab.w2s.models._registry import model
from aarlab.w2s.train import TrainConfig

_WORD = re.compile(r"[a-z0-9']+")


def hashed_words(text: str, buckets: int) -> list[int]:
    return [zlib.crc32(w.encode()) % buckets for w in _WORD.findall(text.lower())] or [0]


class HashedBagOfWords(TorchClassifier):
    default_config = TrainConfig(epochs=8, batch_size=32, lr=0.05, warmup_frac=0.0)

    def __init__(self, label_space, buckets: int, dim: int, name: str, **overrides):
        super().__init__(label_space, **overrides)
        self.buckets, self.dim, self.name = buckets, dim, name

    def build(self, seed: int):
        import torch

        torch.manual_seed(seed)
        buckets, dim, n_labels = self.buckets, self.dim, len(self.label_space)

        class Module(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = torch.nn.EmbeddingBag(buckets, dim, mode="mean")
                self.head = torch.nn.Linear(dim, n_labels)

            def forward(self, batch):
                return self.head(self.embed(batch["ids"], batch["offsets"]))

        return Module()

    def collate(self, texts):
        import torch

        ids = [torch.tensor(hashed_words(t, self.buckets)) for t in texts]

        def collate(idx):
            chosen = [ids[i] for i in idx.tolist()]
            offsets = torch.tensor([0] + [len(x) for x in chosen[:-1]]).cumsum(0)
            return {"ids": torch.cat(chosen), "offsets": offsets}

        return collate

    def zero_shot_proba(self, texts):
        import torch

        # No pretrained prior: cosine similarity to the label names under a seeded random embedding.
        module = self.build(0)
        with torch.no_grad():
            texts_batch = self.collate(list(texts))(torch.arange(len(texts)))
            labels_batch = self.collate(list(self.label_space))(torch.arange(len(self.label_space)))
            x = module.embed(texts_batch["ids"], texts_batch["offsets"])
            labels = module.embed(labels_batch["ids"], labels_batch["offsets"])
            sims = torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(labels, dim=-1).T
        return torch.softmax(sims * 5, dim=-1).numpy()


@model("hashbow-weak", "test", "hashed bag of words, 32 buckets × 8 dims (fast weak model for tests)",
       intermediate="hashbow-mid")
def hashbow_weak(label_space, **overrides):
    return HashedBagOfWords(label_space, 32, 8, "hashbow-weak", **overrides)


@model("hashbow-mid", "test", "hashed bag of words, 512 buckets × 12 dims (intermediate for tests)")
def hashbow_mid(label_space, **overrides):
    return HashedBagOfWords(label_space, 512, 12, "hashbow-mid", **overrides)


@model("hashbow-strong", "test", "hashed bag of words, 4096 buckets × 16 dims (fast strong model for tests)",
       intermediate="hashbow-mid")
def hashbow_strong(label_space, **overrides):
    return HashedBagOfWords(label_space, 4096, 16, "hashbow-strong", **overrides)
