"""A BERT encoder in plain torch, loaded from a ``model.safetensors`` + ``config.json`` directory.

Why not ``transformers.AutoModel``: importing transformers' BERT costs 3.3 s of CPU before the first step
(the model itself loads in 0.2 s), and every method run of the embedded default — each seed of each agent, each
verification re-run, each fixed baseline — pays it again in a fresh process. This module is the same network
(post-LayerNorm BERT: embeddings, then per layer self-attention and a GELU feed-forward, each with dropout,
a residual and LayerNorm; no pooler, which mean-pooling models do not use), computed with the same torch ops
(``scaled_dot_product_attention``, exact-erf GELU), so it matches transformers' outputs to float rounding
(``tests/w2s/test_models.py``). The tokenizer is the ``tokenizers`` library's own, reading ``tokenizer.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face ``config.json`` that a BERT encoder needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1

    @classmethod
    def from_dir(cls, path: Path | str, num_hidden_layers: int | None = None) -> BertConfig:
        raw = json.loads((Path(path) / "config.json").read_text())
        if raw.get("hidden_act", "gelu") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only BERT with exact GELU and absolute positions is supported")
        fields = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        if num_hidden_layers is not None:
            fields["num_hidden_layers"] = num_hidden_layers
        return cls(**fields)


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        # token type 0 everywhere: single-segment inputs
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads, self.p = c.num_attention_heads, c.attention_probs_dropout_prob
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t):
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)),
                                             attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        return out.transpose(1, 2).reshape(b, n, d)


class _Residual(nn.Module):
    """``LayerNorm(dropout(dense(h)) + x)``: BERT's attention and feed-forward outputs."""

    def __init__(self, c: BertConfig, width: int):
        super().__init__()
        self.dense = nn.Linear(width, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(h)) + x)


class _Attention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = _SelfAttention(c)
        self.output = _Residual(c, c.hidden_size)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)


class _Layer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _Residual(c, c.intermediate_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention.output(self.attention.self(x, mask), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)


class _Encoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class BertEncoder(nn.Module):
    """``encoder(input_ids, attention_mask) -> last hidden states [batch, tokens, hidden]``.

    Parameter names follow Hugging Face's ``BertModel`` (``embeddings.…``, ``encoder.layer.N.…``), so its
    ``model.safetensors`` loads as is.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embeddings(input_ids)
        # keys that are padding get no attention: [batch, 1, 1, tokens], True = attend
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x

    @classmethod
    def from_pretrained(cls, path: Path | str, num_hidden_layers: int | None = None) -> BertEncoder:
        """The encoder of a BERT checkpoint directory, keeping its first ``num_hidden_layers`` layers."""
        from safetensors.torch import load_file

        config = BertConfig.from_dir(path, num_hidden_layers)
        model = cls(config)
        state = load_file(str(Path(path) / "model.safetensors"))
        state = {k.removeprefix("bert."): v for k, v in state.items()}
        wanted = model.state_dict()
        missing = [k for k in wanted if k not in state]
        if missing:
            raise ValueError(f"{path}: the checkpoint lacks {len(missing)} weights, e.g. {missing[:3]}")
        model.load_state_dict({k: state[k] for k in wanted})
        return model


def load_tokenizer(path: Path | str, max_length: int):
    """The checkpoint's ``tokenizers.Tokenizer`` (``tokenizer.json``), truncating to ``max_length`` tokens
    (special tokens included) and not padding: batches pad themselves to their longest input."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok

