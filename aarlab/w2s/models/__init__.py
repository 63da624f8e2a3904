"""Models for weak-to-strong tasks, found by name through one registry.

>>> from aarlab.w2s.models import get_model
>>> clf = get_model("minilm-l6", ["negative", "positive"])        # doctest: +SKIP
>>> clf.fit(texts, soft_labels, loss="xent", seed=0)               # doctest: +SKIP
>>> probs = clf.predict_proba(test_texts)                          # doctest: +SKIP

Built in: ``glove-50d`` (weak: mean GloVe vectors + a logistic-regression head), ``minilm-l6`` (strong:
all-MiniLM-L6-v2 fully fine-tuned with a classification head), ``minilm-l3`` (its first three layers, the
intermediate for bootstrapping), ``smollm2-135m`` (third tier: frozen SmolLM2 features + a head initialised
from the label tokens), ``hashbow-weak`` / ``hashbow-strong`` (hashed bag-of-words models for fast tests),
and any Hugging Face causal LM (``hf:Qwen/Qwen3-4B-Base`` or a bare ``org/name``) trained with LoRA and
scored through label-token logits.
"""

from aarlab.w2s.models._registry import (
    ModelInfo,
    check_model,
    get_model,
    intermediate_for,
    list_models,
    model,
)

__all__ = ["ModelInfo", "check_model", "get_model", "intermediate_for", "list_models", "model"]
