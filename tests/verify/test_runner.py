"""One method run in a fresh sandbox: the contract, what the method can see, and every way it can fail."""

from __future__ import annotations

import pytest

from aarlab.errors import UserError
from aarlab.verify import ComputeLimits, MethodFailure, MethodSandbox, run_method
from aarlab.verify._runner import check_entry_point

LIMITS = ComputeLimits(timeout_s=30)

SPY = '''
import argparse, json, os
p = argparse.ArgumentParser(); p.add_argument("--data-dir"); p.add_argument("--out"); p.add_argument("--seed", type=int)
a = p.parse_args()
seen = {"task": sorted(os.listdir(a.data_dir)), "cwd": sorted(os.listdir(".")),
        "private_visible": os.path.exists(PRIVATE), "env": sorted(os.environ),
        "first_test_id": json.loads(open(a.data_dir + "/test.jsonl").readline())["id"]}
try:
    open(a.data_dir + "/x", "w")
    seen["task_writable"] = True
except OSError:
    seen["task_writable"] = False
print(json.dumps(seen))
n = sum(1 for _ in open(a.data_dir + "/test.jsonl"))
json.dump([0] * n, open(a.out, "w"))
'''


def test_same_snapshot_seed_and_data_give_the_same_predictions(task_dir, method_tar):
    tar = method_tar("honest_nb")
    heldout = task_dir / "private" / "heldout" / "public"
    first = run_method("method", heldout, 1, LIMITS, code_tar=tar)
    with MethodSandbox(heldout, LIMITS) as box:  # a sandbox reused across runs starts each one afresh
        again = box.run("method", 1, tar)
        other = box.run("method", 2, tar)
    assert first.predictions == again.predictions
    assert first.predictions_sha256 == again.predictions_sha256
    assert len(first.predictions) == 1200 and set(first.predictions) <= {0, 1}
    assert other.predictions != first.predictions  # the seed reaches the method


def test_method_sees_only_the_heldout_public_files_read_only(task_dir, method_tar, monkeypatch):
    import json

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret")

    private = str((task_dir / "private").resolve())
    tar = method_tar("spy", source=SPY.replace("PRIVATE", repr(private)))
    run = run_method("method", task_dir / "private" / "heldout" / "public", 0, LIMITS, code_tar=tar)
    seen = json.loads(run.log_tail.strip().splitlines()[-1])
    assert seen["task"] == ["task.json", "test.jsonl", "train_unlabel.jsonl"]
    assert seen["cwd"] == ["method.py"]  # a fresh workspace: the snapshot's files only
    assert seen["first_test_id"].startswith("h")  # the held-out split, not the one agents worked on
    assert seen["private_visible"] is False
    assert seen["task_writable"] is False
    assert "ANTHROPIC_API_KEY" not in seen["env"]  # the harness's secrets stay outside


def test_a_crash_is_a_failure_with_the_methods_last_words(task_dir, method_tar):
    with pytest.raises(MethodFailure) as info:
        run_method("method", task_dir / "public", 0, LIMITS, code_tar=method_tar("crash"))
    assert info.value.kind == "crash"
    assert "exited with code 1" in info.value.reason and "boom" in info.value.reason


def test_a_method_that_runs_forever_is_killed_at_the_timeout(task_dir, method_tar):
    import time

    start = time.monotonic()
    with pytest.raises(MethodFailure) as info:
        run_method("method", task_dir / "public", 0, ComputeLimits(timeout_s=1.5), code_tar=method_tar("forever"))
    assert info.value.kind == "timeout" and "timed out after 1.5 s" in info.value.reason
    assert time.monotonic() - start < 10


def test_malformed_predictions_are_a_failure_naming_the_problem(task_dir, method_tar):
    with pytest.raises(MethodFailure) as info:
        run_method("method", task_dir / "public", 0, LIMITS, code_tar=method_tar("malformed"))
    assert info.value.kind == "malformed" and "not an integer label index" in info.value.reason


def test_wrong_length_and_missing_output_are_failures(task_dir, method_tar):
    short = "import sys, json; json.dump([0, 1], open(sys.argv[sys.argv.index('--out') + 1], 'w'))"
    with MethodSandbox(task_dir / "public", LIMITS) as box:
        with pytest.raises(MethodFailure, match="2 predictions for 1200 test inputs"):
            box.run("method", 0, method_tar("x", source=short))
        with pytest.raises(MethodFailure) as info:  # the last run's predictions.json is gone
            box.run("method", 0, method_tar("x", source="print('hi')"))
    assert info.value.kind == "missing"


def test_a_snapshot_that_escapes_its_directory_is_refused(task_dir):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../evil.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(MethodFailure) as failure:
        run_method("method", task_dir / "public", 0, LIMITS, code_tar=buffer.getvalue())
    assert failure.value.kind == "setup"


@pytest.mark.parametrize("bad", ["", "-c", "os; rm -rf /", "a..b", "method/run"])
def test_entry_points_must_be_module_names(bad):
    with pytest.raises(UserError):
        check_entry_point(bad)
    assert check_entry_point("pkg.method_2") == "pkg.method_2"


def test_each_run_in_a_reused_sandbox_starts_from_the_snapshot_alone(task_dir, method_tar):
    leaves_a_file = '''
import os, sys, json
if os.path.exists("leftover.txt"):
    sys.exit("a file from the previous run is still here")
open("leftover.txt", "w").write("x")
json.dump([0] * 1200, open(sys.argv[sys.argv.index("--out") + 1], "w"))
'''
    with MethodSandbox(task_dir / "public", LIMITS) as box:
        for seed in range(2):
            assert box.run("method", seed, method_tar("x", source=leaves_a_file)).predictions == [0] * 1200
