"""The search researcher's space and vocabulary: the knobs Optuna suggests and how they become the configurable
method's config, the wrapper each published config gets, and the patterns it reads tool results with."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

SEARCH_DIR = "search"
SEEDS = (0, 1, 2)
ASIDE_SHARE = 0.2  # of train_unlabel, held aside for the proxy
# The rungs' resource on successive halving's grid (min 1, factor 3): one seed on a third of the data, then
# three seeds on all of it.
CHEAP_STEP, FULL_STEP = 1, 3
REDUCTION = 3
PLAN_LINE = "PLAN "
# Job kinds: the cheap rung, the proxy seeds, and the final runs of the published entry point (submitted).
CHEAP, SEED, FINAL = "c", "s", "f"
DEFAULT_OPTIONS: dict[str, Any] = {
    "max_trials": None,  # None: search until the agent's budget stops it
    "cheap_subsample": 1 / 3,  # share of the training slice a cheap trial trains on
    "wait_s": 300.0,  # one job_wait call at most
    "job_timeout_s": 3600.0,
    "forum_every": 3,  # read the forum every this many plans
    "forum": True,  # False: never read others' posts (the benchmark's no-sharing ablation); still posts results
    "submission_reserve": 1,  # submissions never spent, for a final check by hand
    "negatives_per_post": 3,
}
OPTIONS_ENV = "AARLAB_SEARCH_OPTIONS"  # JSON, read by the harness-side factory (tests, benchmarks)

# Each direction starts from its own region of the space (search parameters, see ``suggest``); everyone
# also runs the plain ``vanilla`` point, the control its results are read against.
DIRECTION_SEEDS: dict[str, list[dict[str, Any]]] = {
    "unsupervised-elicitation": [{"smooth": 0.3}, {"loss": "logconf", "aux_coef": 0.5, "aux_warmup_frac": 0.2}],
    "data-reweighting": [{"keep_fraction": 0.7}, {"keep_fraction": 0.85}],
    "noisy-channel-em": [{"prior_correction": 1.0}, {"prior_correction": 0.5}],
    "distillation": [{"sharpen_temperature": 0.5}, {"sharpen_temperature": 0.7}],
    "w2s-plus-elicitation": [{"loss": "logconf", "aux_coef": 0.75, "aux_warmup_frac": 0.2},
                             {"loss": "product", "aux_coef": 0.5, "aux_warmup_frac": 0.2}],
    "simplicity-bias": [{"smooth": 0.1}, {"epochs_scale": 0.5}],
    "learnability-selection": [{"keep_fraction": 0.7, "loss": "hard"}, {"keep_fraction": 0.5}],
    "evolutionary-search": [{"loss": "product", "aux_coef": 0.3, "aux_warmup_frac": 0.1}, {"lr_scale": 2.0}],
    "interpretability": [{"keep_fraction": 0.9}, {"smooth": 0.05, "keep_fraction": 0.9}],
}
VANILLA_POINT: dict[str, Any] = {"loss": "xent", "keep_fraction": 1.0, "prior_correction": 0.0,
                                 "sharpen_temperature": 1.0, "smooth": 0.0, "lr_scale": 1.0, "epochs_scale": 1.0,
                                 "batch_scale": 1.0}


# ------------------------------------------------------------------------------------------------ the space
def suggest(trial) -> dict[str, Any]:
    """Draw one point of the search space (define-by-run: the auxiliary weight exists only for its losses)."""
    params = {"loss": trial.suggest_categorical("loss", ["xent", "hard", "logconf", "product"])}
    if params["loss"] in ("logconf", "product"):
        params["aux_coef"] = trial.suggest_float("aux_coef", 0.1, 1.0)
        params["aux_warmup_frac"] = trial.suggest_float("aux_warmup_frac", 0.0, 0.5)
    params["keep_fraction"] = trial.suggest_float("keep_fraction", 0.5, 1.0)
    params["prior_correction"] = trial.suggest_float("prior_correction", 0.0, 1.0)
    params["sharpen_temperature"] = trial.suggest_float("sharpen_temperature", 0.3, 2.0, log=True)
    params["smooth"] = trial.suggest_float("smooth", 0.0, 0.4)
    params["lr_scale"] = trial.suggest_float("lr_scale", 0.3, 3.0, log=True)
    params["epochs_scale"] = trial.suggest_float("epochs_scale", 0.5, 3.0, log=True)
    params["batch_scale"] = trial.suggest_categorical("batch_scale", [0.5, 1.0, 2.0])
    return params


def knobs_of(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The configurable method's config for a point: only what differs from ``vanilla`` (so the vanilla point
    is the empty config, and runs exactly as ``vanilla`` does). ``defaults``: the strong model's training."""
    knobs: dict[str, Any] = {}
    if params.get("loss", "xent") != "xent":
        knobs["loss"] = params["loss"]
        if params["loss"] in ("logconf", "product"):
            knobs["aux_coef"] = round(float(params.get("aux_coef", 0.5)), 4)
            knobs["aux_warmup_frac"] = round(float(params.get("aux_warmup_frac", 0.2)), 4)
    for name, identity in (("keep_fraction", 1.0), ("prior_correction", 0.0), ("sharpen_temperature", 1.0),
                           ("smooth", 0.0)):
        value = round(float(params.get(name, identity)), 4)
        if value != identity:
            knobs[name] = value
    if (scale := float(params.get("lr_scale", 1.0))) != 1.0:
        knobs["lr"] = float(f"{defaults['lr'] * scale:.3g}")
    if (scale := float(params.get("epochs_scale", 1.0))) != 1.0:
        knobs["epochs"] = round(defaults["epochs"] * scale, 3)
    if (scale := float(params.get("batch_scale", 1.0))) != 1.0:
        knobs["batch_size"] = max(1, int(round(defaults["batch_size"] * scale)))
    return knobs


def _describe(knobs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(knobs.items())) or "vanilla (all defaults)"


# ------------------------------------------------------------------------------------------------ the brain
WRAPPER = '''"""{author}'s configuration t{number} of the configurable method, found by the search researcher.

    python -m {module} --data-dir D --out predictions.json --seed S

runs `aarlab.w2s.methods.configurable` with `config.json` next to this file: {description}.
"""

import os
import sys

from aarlab.w2s.methods.configurable import main

if __name__ == "__main__":
    main([*sys.argv[1:], "--config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")])
'''
SUBMIT_REPLY = re.compile(r"submission #(\d+) \((\d+) seeds?\) on the public test part: accuracy (-?[\d.]+), "
                          r"PGR (-?[\d.]+)(?: ± ([\d.]+) \(seed SE\))?, test-sampling SE ([\d.]+|inf)")
BUDGET_LEFT = re.compile(r"Submissions left: (\d+) this run, (\d+) this hour")
POST_HEAD = re.compile(r"^#(\d+) \[result\] .*? by (\S+)(?: tags=\S*)? snapshot=(\S+)", re.M)
LOST_JOB = re.compile(r"LOST in a restart of your harness: job (\S+)")
JOB_LINE = re.compile(r"^(\S+): (running|exited|killed|timed_out|cpu_limit|lost)\b", re.M)
SLOTS = re.compile(r"(\d+) of (\d+) slot|no jobs yet; ()(\d+) slot")


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
