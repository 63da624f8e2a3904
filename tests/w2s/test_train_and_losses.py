import pytest
import torch

from aarlab.errors import UserError
from aarlab.w2s.losses import get_loss, hard_xent, logconf, xent
from aarlab.w2s.train import TrainConfig, autocast_dtype, batch_order, precision_name, predict_proba, train


def test_soft_xent_differs_from_hard_xent_on_soft_targets():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[0.7, 0.3], [0.4, 0.6]])
    assert xent(logits, targets) != hard_xent(logits, targets)
    assert torch.isclose(hard_xent(logits, targets), hard_xent(logits, torch.tensor([[1.0, 0.0], [0.0, 1.0]])))


def test_logconf_equals_xent_before_warmup_and_pulls_toward_own_predictions_after():
    logits = torch.tensor([[3.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 3.0]])
    weak = torch.tensor([[0.4, 0.6], [0.6, 0.4], [0.4, 0.6], [0.6, 0.4]])
    loss = logconf(aux_coef=0.5, warmup_frac=0.2)
    assert torch.isclose(loss(logits, weak, 0.0), xent(logits, weak))
    # Late in training the student's confident (hardened) predictions count: the loss drops when they agree.
    assert loss(logits, weak, 1.0) < xent(logits, weak)


def test_unknown_loss_is_a_user_error():
    with pytest.raises(UserError, match="unknown loss"):
        get_loss("focal")


def test_batch_order_is_seeded_and_covers_every_example_each_epoch():
    config = TrainConfig(epochs=2, batch_size=4)
    lengths = [i % 7 + 1 for i in range(30)]
    a = batch_order(30, config, seed=1, lengths=lengths)
    assert [x.tolist() for x in a] == [x.tolist() for x in batch_order(30, config, seed=1, lengths=lengths)]
    assert [x.tolist() for x in a] != [x.tolist() for x in batch_order(30, config, seed=2, lengths=lengths)]
    first_epoch = sorted(i for b in a[:8] for i in b.tolist())
    assert first_epoch == list(range(30))


def test_training_loop_fits_a_linear_problem_and_predict_keeps_input_order():
    torch.manual_seed(0)
    x = torch.randn(200, 5)
    y = (x[:, 0] > 0).long()
    module = torch.nn.Linear(5, 2)
    collate = lambda idx: x[idx]  # noqa: E731
    collate.lengths = list(range(200, 0, -1))  # predict sorts by length; outputs must come back in order
    losses = train(module, collate, torch.eye(2)[y], xent, TrainConfig(epochs=5, batch_size=20, lr=0.1), seed=0)
    assert losses[-1] < losses[0]
    probs = predict_proba(module, collate, 200, batch_size=32)
    assert (probs.argmax(1) == y).float().mean() > 0.95
    assert torch.allclose(probs, torch.softmax(module(x), -1), atol=1e-6)


def test_precision_resolves_from_config_env_and_hardware(monkeypatch):
    monkeypatch.delenv("AARLAB_PRECISION", raising=False)
    assert autocast_dtype("fp32") is None
    assert autocast_dtype("bf16") is torch.bfloat16
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert autocast_dtype("auto") is (torch.bfloat16 if native else None)
    monkeypatch.setenv("AARLAB_PRECISION", "fp32")  # pins "auto", never a model's explicit choice
    assert autocast_dtype("auto") is None and precision_name("auto") == "fp32"
    assert autocast_dtype("bf16") is torch.bfloat16
    monkeypatch.setenv("AARLAB_PRECISION", "half")
    with pytest.raises(UserError, match="precision must be auto, fp32 or bf16, not 'half'"):
        autocast_dtype("auto")


def test_bf16_training_runs_the_forward_in_bf16_and_the_loss_in_fp32():
    torch.manual_seed(0)
    x = torch.randn(120, 5)
    y = (x[:, 0] > 0).long()
    module = torch.nn.Linear(5, 2)
    seen_forward, seen_loss = set(), set()
    module.register_forward_hook(lambda _m, _i, out: seen_forward.add(out.dtype))

    def loss(logits, targets, frac):
        seen_loss.add(logits.dtype)
        return xent(logits, targets, frac)

    collate = lambda idx: x[idx]  # noqa: E731
    losses = train(module, collate, torch.eye(2)[y], loss, TrainConfig(epochs=5, batch_size=20, lr=0.1,
                                                                       precision="bf16"), seed=0)
    assert seen_forward == {torch.bfloat16} and seen_loss == {torch.float32}
    assert module.weight.dtype == torch.float32  # master weights stay fp32
    assert losses[-1] < losses[0]
    probs = predict_proba(module, collate, 120, batch_size=32, precision="bf16")
    assert probs.dtype == torch.float32 and (probs.argmax(1) == y).float().mean() > 0.9
    # The same model in fp32 agrees to bf16's precision.
    assert torch.allclose(probs, predict_proba(module, collate, 120, precision="fp32"), atol=2e-2)


def test_only_the_strong_models_default_to_auto_precision():
    from aarlab.w2s.models import get_model

    assert get_model("minilm-l6", ["a", "b"]).config.precision == "auto"
    assert get_model("glove-50d", ["a", "b"]).config.precision == "fp32"  # the teacher's soft labels stay exact
