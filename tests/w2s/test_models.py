import numpy as np
import pytest

from aarlab.errors import UserError
from aarlab.w2s.models import check_model, get_model, intermediate_for, list_models


def test_unknown_model_is_a_user_error_naming_the_known_ones():
    with pytest.raises(UserError, match="unknown model 'minilm-l7'.*minilm-l6"):
        check_model("minilm-l7")


def test_registry_has_the_offline_tiers_and_takes_hub_ids():
    names = {m.name for m in list_models()}
    assert {"glove-50d", "minilm-l6", "minilm-l3", "smollm2-135m", "hashbow-weak", "hashbow-strong"} <= names
    assert check_model("Qwen/Qwen3-4B-Base") == "Qwen/Qwen3-4B-Base"
    assert check_model("hf:Qwen/Qwen1.5-0.5B-Chat")
    assert intermediate_for("minilm-l6") == "minilm-l3"


def _sentiment(n, seed=0):
    rng = np.random.default_rng(seed)
    good, bad = ["good", "great", "lovely"], ["bad", "awful", "grim"]
    texts, labels = [], []
    for _ in range(n):
        y = int(rng.integers(2))
        texts.append(f"the food was {rng.choice(good if y else bad)} and the room was {rng.choice(good if y else bad)}")
        labels.append(y)
    return texts, np.eye(2, dtype=np.float32)[labels], np.array(labels)


def test_hashbow_strong_learns_and_is_deterministic_per_seed():
    texts, targets, labels = _sentiment(200)
    probs = []
    for _ in range(2):
        clf = get_model("hashbow-strong", ["negative", "positive"])
        clf.fit(texts, targets, seed=3)
        probs.append(clf.predict_proba(texts))
    assert np.array_equal(probs[0], probs[1])
    assert (probs[0].argmax(1) == labels).mean() > 0.9


def test_hf_causal_lm_trains_with_lora_through_label_token_logits(tiny_qwen3):
    texts, targets, labels = _sentiment(48)
    clf = get_model(f"hf:{tiny_qwen3}", ["negative", "positive"], epochs=6, lr=5e-3, batch_size=8)
    zero = clf.zero_shot_proba(texts[:5])
    assert zero.shape == (5, 2) and np.allclose(zero.sum(1), 1, atol=1e-5)
    clf.fit(texts, targets, seed=0)
    trainable = [n for n, p in clf.module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert (clf.predict_proba(texts).argmax(1) == labels).mean() > 0.8


def test_hf_causal_lm_falls_back_to_letters_when_labels_share_a_first_token(tiny_qwen3):
    clf = get_model(f"hf:{tiny_qwen3}", ["the food", "the room"])
    ids, letters = clf.label_token_ids()
    assert letters and len(set(ids)) == 2


def test_glove_weak_model_separates_sentiment():
    texts, targets, labels = _sentiment(120)
    clf = get_model("glove-50d", ["negative", "positive"])
    clf.fit(texts, targets, seed=0)
    assert (clf.predict_proba(texts).argmax(1) == labels).mean() > 0.9
    zero = clf.zero_shot_proba(["awful grim bad", "lovely great good"])
    assert zero[0, 0] > zero[0, 1] and zero[1, 1] > zero[1, 0]


@pytest.mark.slow
def test_minilm_fine_tunes_on_a_few_dozen_examples():
    texts, targets, labels = _sentiment(40)
    clf = get_model("minilm-l6", ["negative", "positive"], epochs=3)
    clf.fit(texts, targets, seed=0)
    assert (clf.predict_proba(texts).argmax(1) == labels).mean() > 0.85
    zero = clf.zero_shot_proba(["a truly awful, miserable stay", "a wonderful, lovely stay"])
    assert zero[0, 0] > zero[0, 1] and zero[1, 1] > zero[1, 0]


@pytest.mark.slow
def test_smollm2_frozen_head_starts_from_label_token_logits():
    clf = get_model("smollm2-135m", ["negative", "positive"], epochs=2)
    texts, targets, _ = _sentiment(16)
    zero = clf.zero_shot_proba(texts[:4])
    clf.fit(texts, targets, seed=0)
    assert zero.shape == (4, 2)
    assert clf.predict_proba(texts).shape == (16, 2)


@pytest.mark.slow
def test_the_plain_torch_bert_encoder_and_tokenizer_match_transformers():
    """``_bert`` replaces transformers' BertModel and tokenizer (3 s of import per method run): same ids, same
    hidden states to float rounding, with padding, in eval mode; and it trains (dropout on) to other outputs."""
    import torch
    transformers = pytest.importorskip("transformers")

    from aarlab.w2s.models._bert import BertEncoder
    from aarlab.w2s.models._minilm import minilm_path, minilm_tokenizer

    texts = ["A truly awful, miserable stay!", "lovely", "Ünïcode — and a much longer sentence " * 8]
    hf_tok = transformers.AutoTokenizer.from_pretrained(minilm_path())
    ids = [e.ids for e in minilm_tokenizer(48).encode_batch(texts)]
    assert ids == hf_tok(texts, truncation=True, max_length=48)["input_ids"]
    assert len(ids[2]) == 48 and ids[1][0] == hf_tok.cls_token_id and ids[1][-1] == hf_tok.sep_token_id
    width = max(map(len, ids))
    input_ids = torch.tensor([x + [0] * (width - len(x)) for x in ids])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
    for layers in (6, 3):
        ours = BertEncoder.from_pretrained(minilm_path(), num_hidden_layers=layers).eval()
        theirs = transformers.AutoModel.from_pretrained(minilm_path(), num_hidden_layers=layers).eval()
        with torch.no_grad():
            a = ours(input_ids, mask)
            b = theirs(input_ids=input_ids, attention_mask=mask).last_hidden_state
        real = mask.bool()
        assert torch.allclose(a[real], b[real], atol=1e-4), (a[real] - b[real]).abs().max()
    ours.train()
    with torch.no_grad():
        assert not torch.allclose(ours(input_ids, mask), ours.eval()(input_ids, mask))
