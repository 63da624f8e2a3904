import pytest
import torch

from aarlab.errors import UserError
from aarlab.w2s.losses import get_loss, hard_xent, logconf, xent
from aarlab.w2s.train import TrainConfig, batch_order, predict_proba, train


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
