"""The ``aarlab w2s`` commands, driven through typer's CliRunner on the sub-app and once via the real entry point."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aarlab.w2s.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, pattern):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], result.output


def test_prepare_with_an_unknown_dataset_or_model_fails_in_one_line_and_writes_nothing(tmp_path):
    one_line_error(invoke("prepare", "--dataset", "nosuch:thing", "--out", tmp_path / "t"), "unknown dataset 'nosuch'")
    one_line_error(invoke("prepare", "--dataset", "synthetic:100", "--size", "100", "--weak", "glove-5d",
                          "--out", tmp_path / "t"), "unknown model 'glove-5d'")
    assert list(tmp_path.iterdir()) == []


def test_run_method_on_a_task_dir_missing_files_fails_in_one_line(synthetic_task):
    (synthetic_task / "private" / "test_labels.jsonl").unlink()
    one_line_error(invoke("run-method", "vanilla", "--task", synthetic_task, "--seeds", "1"),
                   "missing private/test_labels.jsonl")
    one_line_error(invoke("run-method", "vanila", "--task", synthetic_task), "unknown method 'vanila'")


@pytest.mark.parametrize("payload, message", [
    ("[0, 1]", "2 predictions for 80 test inputs"),
    ('["positive"] * 80', "prediction 0 is 'positive', not an integer label index"),
    ("[0] * 79 + [7]", "prediction 79 is 7, outside the label space 0..1"),
])
def test_a_method_writing_bad_predictions_fails_in_one_line(synthetic_task, tmp_path, monkeypatch, payload, message):
    (tmp_path / "badpkg").mkdir()
    (tmp_path / "badpkg" / "__init__.py").write_text("")
    (tmp_path / "badpkg" / "method.py").write_text(textwrap.dedent(f"""
        import argparse, json
        p = argparse.ArgumentParser()
        p.add_argument("--data-dir"); p.add_argument("--out"); p.add_argument("--seed")
        json.dump({payload}, open(p.parse_args().out, "w"))
    """))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    one_line_error(invoke("run-method", "badpkg.method", "--task", synthetic_task, "--seeds", "1"), message)


def test_run_method_scores_each_seed_with_acc_and_pgr(synthetic_task):
    result = invoke("run-method", "vanilla", "--task", synthetic_task, "--seeds", "1", "--part", "private")
    assert result.exit_code == 0, result.output
    assert "seed 0: transfer acc" in result.output
    assert "vanilla: transfer acc" in result.output and "(n=1 seeds, part=private)" in result.output


def test_baselines_prints_a_table_and_writes_a_png_plot(synthetic_task, tmp_path):
    plot = tmp_path / "pgr.png"
    result = invoke("baselines", "--task", synthetic_task, "--seeds", "1", "--methods", "vanilla,zeroshot",
                    "--plot", plot)
    assert result.exit_code == 0, result.output
    for cell in ("weak teacher", "strong ceiling", "vanilla", "zeroshot", "PGR ± SE", "minutes/run"):
        assert cell in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((synthetic_task / "baselines" / "results.json").read_text())
    assert [m["method"] for m in results["methods"]] == ["vanilla", "zeroshot"]


def test_models_and_datasets_list_the_registries():
    assert "minilm-l6" in invoke("models").output
    assert "bigbench" in invoke("datasets").output


def test_real_entry_point_exits_2_with_one_line_on_a_missing_task(tmp_path):
    aarlab = Path(sys.executable).parent / "aarlab"
    proc = subprocess.run([str(aarlab), "w2s", "run-method", "vanilla", "--task", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: task directory {tmp_path / 'none'} does not exist (make one with `aarlab w2s prepare`)"]


def test_baselines_without_task_uses_the_default_task_that_aarlab_run_prepares(tmp_path, monkeypatch):
    import aarlab.cli  # noqa: F401  (the top-level CLI hands the embedded default's resolver to the w2s commands)
    from aarlab.config import RunConfig
    from aarlab.team._rundir import task_cache_key
    from aarlab.w2s.synthetic import write_synthetic_task

    monkeypatch.setenv("AARLAB_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "prepared" / task_cache_key(RunConfig())
    write_synthetic_task(cached, n_unlabel=60, n_test=40)
    result = invoke("baselines", "--seeds", "1", "--methods", "zeroshot")
    assert result.exit_code == 0, result.output
    assert "synthetic: hashbow-weak → hashbow-strong" in result.output
    assert (cached / "baselines" / "pgr.png").is_file()


def test_calibrate_prints_public_private_and_heldout_pgr_with_both_ses_and_agreement(synthetic_task):
    result = invoke("calibrate", synthetic_task, "--methods", "zeroshot", "--seeds", "1")
    assert result.exit_code == 0, result.output
    assert "| method | public PGR | private PGR | held-out PGR |" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| zeroshot")]
    assert len(rows) == 1 and all(row.count(" ± ") == 6 and row.rstrip(" |").endswith(("yes", "no")) for row in rows)
    as_json = invoke("calibrate", synthetic_task, "--methods", "zeroshot", "--seeds", "2", "--json")
    assert as_json.exit_code == 0, as_json.output
    method = json.loads(as_json.stdout)["methods"][0]
    assert set(method["parts"]) == {"public", "private", "heldout"}
    assert set(method["comparisons"]) == {"public-private", "public-heldout", "private-heldout"}
    for part in method["parts"].values():
        assert part["n_seeds"] == 2 and part["pgr_test_se"] > 0 and part["n_examples"] > 0
    # zeroshot ignores its seed: no seed spread, only test-sampling noise.
    assert method["parts"]["public"]["pgr_se"] == 0
    assert method["agree"] == all(c["agrees"] for c in method["comparisons"].values())


def test_run_method_shows_the_seed_se_and_the_test_se(synthetic_task):
    result = invoke("run-method", "zeroshot", "--task", synthetic_task, "--seeds", "2", "--part", "public")
    assert result.exit_code == 0, result.output
    assert "(seeds) ± " in result.output and "(test)" in result.output and "part=public); 40 test examples" in result.output
