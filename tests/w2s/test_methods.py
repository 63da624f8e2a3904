import subprocess
import sys

import pytest

from aarlab.w2s.methods import KNOWN_METHODS
from aarlab.w2s.methods.confident import confident_mask
from aarlab.w2s.methods.zeroshot import calibrate_to_prior
from aarlab.w2s.taskdir import TaskDir, load_predictions


def _run_in_process(module_name, task, out, seed, extra=()):
    import importlib

    importlib.import_module(module_name).main(["--data-dir", str(task / "public"), "--out", str(out),
                                              "--seed", str(seed), *extra])
    return load_predictions(out, len(TaskDir(task).test_inputs()), 2)


@pytest.mark.parametrize("method", sorted(KNOWN_METHODS))
def test_every_known_method_writes_valid_predictions_on_a_synthetic_task(method, synthetic_task, tmp_path):
    module, extra = KNOWN_METHODS[method]
    predictions = _run_in_process(module, synthetic_task, tmp_path / "p.json", 0, extra)
    assert set(predictions) <= {0, 1}


def test_vanilla_beats_chance_and_is_deterministic_per_seed(synthetic_task, tmp_path):
    a = _run_in_process("aarlab.w2s.methods.vanilla", synthetic_task, tmp_path / "a.json", 1)
    b = _run_in_process("aarlab.w2s.methods.vanilla", synthetic_task, tmp_path / "b.json", 1)
    assert a == b
    labels = [row["label"] for row in TaskDir(synthetic_task).test_labels()]
    assert sum(p == y for p, y in zip(a, labels, strict=True)) / len(labels) > 0.75


def test_method_on_a_dir_without_task_files_fails_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "aarlab.w2s.methods.vanilla", "--data-dir", str(tmp_path),
                           "--out", str(tmp_path / "p.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: data dir {tmp_path} has no task.json"
    assert not (tmp_path / "p.json").exists()


def test_confident_mask_keeps_the_surest_share_of_each_class():
    import numpy as np

    soft = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.7, 0.3], [0.35, 0.65]])
    assert confident_mask(soft, keep=0.5, threshold=None).tolist() == [True, False, True, False, True, True]
    assert confident_mask(soft, keep=0.5, threshold=0.75).tolist() == [True, False, True, False, False, False]


def test_zeroshot_calibration_matches_the_weak_class_balance():
    import numpy as np

    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])  # raw prior: all class 0
    calibrated = calibrate_to_prior(probs, np.array([0.5, 0.5]))
    assert calibrated.argmax(1).tolist() == [0, 0, 1, 1]
