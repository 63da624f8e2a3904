"""The configurable method: its defaults are vanilla, and each knob changes training as documented."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from aarlab.w2s.losses import product, xent
from aarlab.w2s.methods import KNOWN_METHODS
from aarlab.w2s.methods._common import load_data_dir
from aarlab.w2s.methods._knobs import Knobs, knob_table, load_knobs
from aarlab.w2s.methods.configurable import configurable, loss_of, strong_model, transform_weak_labels
from aarlab.w2s.methods.vanilla import vanilla
from aarlab.w2s.taskdir import TaskDir, load_predictions


def _probs(method, task, seed, **args):
    from aarlab.w2s.train import seed_everything

    seed_everything(seed)
    return method(load_data_dir(task / "public"), argparse.Namespace(seed=seed, **args))


def _config(tmp_path, **knobs):
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.json"
    path.write_text(json.dumps(knobs))
    return str(path)


@pytest.mark.parametrize("seed", [0, 3])
def test_default_config_gives_exactly_vanillas_predictions(synthetic_task, tmp_path, seed):
    expected = _probs(vanilla, synthetic_task, seed, hard=False)
    assert np.array_equal(_probs(configurable, synthetic_task, seed, config=None), expected)
    assert np.array_equal(_probs(configurable, synthetic_task, seed, config=_config(tmp_path)), expected)


def test_method_contract_writes_the_same_predictions_file_as_vanilla(synthetic_task, tmp_path):
    import importlib

    outs = {}
    for name in ("vanilla", "configurable"):
        module, extra = KNOWN_METHODS[name]
        importlib.import_module(module).main(["--data-dir", str(synthetic_task / "public"), "--out",
                                              str(tmp_path / f"{name}.json"), "--seed", "2", *extra])
        outs[name] = load_predictions(tmp_path / f"{name}.json", len(TaskDir(synthetic_task).test_inputs()), 2)
    assert outs["configurable"] == outs["vanilla"]


def test_a_training_knob_changes_the_predictions(synthetic_task, tmp_path):
    base = _probs(configurable, synthetic_task, 0, config=None)
    changed = _probs(configurable, synthetic_task, 0, config=_config(tmp_path, lr=0.5, epochs=2))
    assert not np.allclose(base, changed)


def test_transforms_at_their_defaults_keep_every_row_unchanged():
    soft = np.random.default_rng(0).dirichlet([1, 1], size=50).astype(np.float32)
    rows, labels = transform_weak_labels(Knobs(), soft, seed=0)
    assert rows.tolist() == list(range(50)) and labels is not soft and np.array_equal(labels, soft)


def test_subsample_keeps_a_seeded_share_in_file_order():
    soft = np.random.default_rng(0).dirichlet([1, 1], size=200).astype(np.float32)
    rows, labels = transform_weak_labels(Knobs(subsample=0.25), soft, seed=4)
    again, _ = transform_weak_labels(Knobs(subsample=0.25), soft, seed=4)
    other, _ = transform_weak_labels(Knobs(subsample=0.25), soft, seed=5)
    assert len(rows) == 50 and rows.tolist() == sorted(rows.tolist()) and np.array_equal(labels, soft[rows])
    assert rows.tolist() == again.tolist() and rows.tolist() != other.tolist()


def test_confidence_filter_keeps_the_most_confident_share_of_each_weak_class():
    soft = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8], [0.45, 0.55]], dtype=np.float32)
    rows, labels = transform_weak_labels(Knobs(keep_fraction=0.5), soft, seed=0)
    assert rows.tolist() == [0, 2, 4]
    assert np.array_equal(labels, soft[[0, 2, 4]])


def test_prior_correction_moves_the_weak_labels_towards_a_balanced_prior():
    soft = np.array([[0.9, 0.1]] * 6 + [[0.3, 0.7]] * 2, dtype=np.float32)
    _, half = transform_weak_labels(Knobs(prior_correction=0.5), soft, seed=0)
    _, full = transform_weak_labels(Knobs(prior_correction=1.0), soft, seed=0)
    skew = soft.mean(axis=0)[0]
    assert skew > half.mean(axis=0)[0] > full.mean(axis=0)[0]
    assert np.allclose(full.sum(axis=1), 1.0)


def test_sharpening_and_smoothing_move_confidence_the_documented_way():
    soft = np.array([[0.7, 0.3], [0.4, 0.6]], dtype=np.float32)
    _, sharp = transform_weak_labels(Knobs(sharpen_temperature=0.5), soft, seed=0)
    _, flat = transform_weak_labels(Knobs(sharpen_temperature=2.0), soft, seed=0)
    _, smooth = transform_weak_labels(Knobs(smooth=0.5), soft, seed=0)
    assert np.allclose(sharp[0], [0.49 / 0.58, 0.09 / 0.58])
    assert (sharp.max(axis=1) > soft.max(axis=1)).all() and (flat.max(axis=1) < soft.max(axis=1)).all()
    assert np.allclose(smooth, [[0.6, 0.4], [0.45, 0.55]])


def test_max_steps_caps_the_optimiser_steps_and_training_knobs_reach_the_model(synthetic_task):
    data = load_data_dir(synthetic_task / "public")
    n = len(data.unlabel_texts)
    strong = strong_model(data, Knobs(max_steps=3, lr=0.01, batch_size=8, warmup_frac=0.3), n)
    assert (strong.config.lr, strong.config.batch_size, strong.config.warmup_frac) == (0.01, 8, 0.3)
    steps = []
    strong.fit(data.unlabel_texts, data.weak_soft_labels, seed=0, progress=lambda step, total: steps.append(total))
    assert steps == [3, 3, 3]
    uncapped = strong_model(data, Knobs(max_steps=10_000), n)
    assert uncapped.config.epochs == strong_model(data, Knobs(), n).config.epochs


def test_product_loss_is_xent_at_weight_zero_and_pulls_towards_the_students_belief():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    assert torch.allclose(product(aux_coef=0.0)(logits, targets, 0.5), xent(logits, targets))
    # With the student's weight on, uncertain weak labels lean towards what the student predicts: lower loss.
    assert product(aux_coef=1.0, warmup_frac=0.0)(logits, targets, 0.0) < xent(logits, targets)
    # The weight ramps up over the warm-up: at the start it is still plain cross entropy.
    assert torch.allclose(product(aux_coef=1.0, warmup_frac=0.5)(logits, targets, 0.0), xent(logits, targets))


def test_loss_knob_names_the_loss_the_model_trains_with():
    assert loss_of(Knobs()) == "xent" and loss_of(Knobs(loss="hard")) == "hard"
    logits, targets = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.3, 0.7]])
    for name in ("logconf", "product"):
        fn = loss_of(Knobs(loss=name, aux_coef=0.8, aux_warmup_frac=0.0))
        assert not torch.allclose(fn(logits, targets, 1.0), xent(logits, targets))


def test_a_config_with_an_unknown_knob_fails_in_one_line(synthetic_task, tmp_path):
    bad = _config(tmp_path, sharpen=0.5)
    proc = subprocess.run([sys.executable, "-m", "aarlab.w2s.methods.configurable", "--data-dir",
                           str(synthetic_task / "public"), "--out", str(tmp_path / "p.json"), "--config", bad],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "sharpen" in proc.stderr and not (tmp_path / "p.json").exists()


def test_every_knob_is_documented_in_the_table_and_in_docs():
    from pathlib import Path

    table = knob_table()
    docs = (Path(__file__).resolve().parents[2] / "docs" / "search.md").read_text()
    for name, field in Knobs.model_fields.items():
        assert field.description and f"`{name}`" in table and f"`{name}`" in docs
    assert load_knobs(None) == Knobs()
