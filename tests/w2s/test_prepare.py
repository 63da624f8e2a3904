import json

import pytest

from aarlab.errors import UserError
from aarlab.w2s.prepare import prepare
from aarlab.w2s.taskdir import TaskDir

ARGS = dict(dataset="synthetic:400", size=400, seeds=2, weak="hashbow-weak", strong="hashbow-strong", progress=False)


def test_prepare_writes_the_task_layout_with_hidden_labels_only_in_private(tmp_path):
    root = prepare(out=tmp_path / "t", **ARGS)
    task = TaskDir(root).check()
    heldout = TaskDir(root, heldout=True).check()
    info = task.info()
    assert info.sizes == {"train_label": 60, "train_unlabel": 160, "test": 80, "heldout_unlabel": 60, "heldout_test": 40}
    assert info.fixed.weak_acc.n == 2 and info.fixed.ceiling_acc.mean > info.fixed.weak_acc.mean
    assert info.extra["intermediate_model"] == "hashbow-mid"
    for public in (task.public, heldout.public):
        for line in (public / "train_unlabel.jsonl").read_text().splitlines():
            row = json.loads(line)
            assert "label" not in row and abs(sum(row["weak_soft_label"]) - 1) < 1e-4
        assert all("label" not in json.loads(line) for line in (public / "test.jsonl").read_text().splitlines())
    parts = {row["part"] for row in task.test_labels()}
    assert parts == {"public", "private"}
    baselines = task.baseline_predictions()
    assert len(baselines["weak"]) == 2 and len(baselines["ceiling"][0]) == 80
    ids = lambda p: {json.loads(x)["id"] for x in p.read_text().splitlines()}  # noqa: E731
    assert not ids(task.public / "test.jsonl") & ids(heldout.public / "test.jsonl")
    assert not ids(task.public / "train_unlabel.jsonl") & ids(task.private / "train_label.jsonl")


def test_prepare_is_deterministic_for_a_seed(tmp_path):
    a, b = prepare(out=tmp_path / "a", **ARGS), prepare(out=tmp_path / "b", **ARGS)
    for rel in ("public/train_unlabel.jsonl", "private/baseline_predictions.json", "private/test_labels.jsonl",
                "private/heldout/public/train_unlabel.jsonl"):
        assert (a / rel).read_text() == (b / rel).read_text()


def test_prepare_refuses_a_non_empty_dir_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "t"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty; pass --force"):
        prepare(out=out, **ARGS)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(UserError, match="has 400 examples; --size 1000"):
        prepare(out=tmp_path / "new", **{**ARGS, "size": 1000})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    prepare(out=out, force=True, **ARGS)
    assert not (out / "keep.txt").exists() and TaskDir(out).check()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


@pytest.mark.slow
def test_prepare_glove_to_minilm_on_bigbench_then_run_a_method(fake_bigbench, tmp_path):
    from aarlab.w2s.baselines import run_method

    root = prepare(dataset="bigbench:multiemo/all_sentence_en", out=tmp_path / "t", size=80, seeds=1, progress=False)
    info = TaskDir(root).check().info()
    assert (info.weak_model, info.strong_model, info.label_space) == ("glove-50d", "minilm-l6", ["negative", "positive"])
    result = run_method("vanilla", root, seeds=1)
    assert 0 <= result.stats.transfer_acc <= 1 and result.stats.n_seeds == 1


def test_the_heldout_ceiling_learns_from_the_heldout_examples_a_verified_method_learns_from(tmp_path, monkeypatch):
    # A verified method trains on heldout_unlabel; its ceiling must too, or verified PGR is biased downwards.
    from aarlab.w2s import prepare as prepare_module

    fitted = []
    real_fit = prepare_module._ProgressTrainer.fit

    def recording_fit(self, model, texts, targets, seed, description):
        fitted.append((description.split(" (")[0], len(texts)))
        return real_fit(self, model, texts, targets, seed=seed, description=description)

    monkeypatch.setattr(prepare_module._ProgressTrainer, "fit", recording_fit)
    root = prepare(out=tmp_path / "t", **ARGS)
    sizes = TaskDir(root).info().sizes
    assert fitted.count(("weak", sizes["train_label"])) == 2
    assert fitted.count(("ceiling", sizes["train_unlabel"])) == 2
    assert fitted.count(("held-out ceiling", sizes["heldout_unlabel"])) == 2
    heldout = TaskDir(root, heldout=True)
    assert heldout.info().extra["prepare_version"] == prepare_module.PREPARE_VERSION
    assert len(heldout.baseline_predictions()["ceiling"]) == 2
