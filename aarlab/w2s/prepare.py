"""``prepare``: a dataset and two models → a task directory (layout in ``aarlab.w2s.taskdir``).

Splits, by a shuffle of the dataset keyed by the seed and a secret (``secrets.token_hex``, kept in
``private/split.json``):

- ``train_label`` (``train_label`` examples) trains the weak teacher: one teacher, whose soft labels define
  the task on both splits;
- the main split: ``train_unlabel`` (inputs + the teacher's soft labels go to agents) and a test set of a
  public and a private part (``test`` examples each at the default public share of one half);
- the held-out split, built exactly like the main one: ``heldout_unlabel`` of ``train_unlabel``'s size,
  labelled by the same teacher, and ``heldout_test`` of one test part's size. An honest method's expected
  PGR is the same on both.

Test sizes are set for precision, not as a share of the training data: inference is cheap next to
training, and a test part of ``n`` examples gives PGR a test-sampling SE of about ``s / (gap · √n)``
(``docs/instrument.md`` has the arithmetic and the measured ``s``). The fixed baselines are the weak teacher
(trained on ``train_label``) and the strong ceiling, trained on the ground truth of the examples a method
learns from (``train_unlabel`` for the main split, ``heldout_unlabel`` for the held-out one), each over
seeds; their per-seed test predictions are stored so that any part is scored exactly.

The public/private assignment and the held-out membership come from the secret, never from anything in
``public/``. Before writing, a **signal check** measures each part's gap (ceiling − weak) with its noise and
refuses a task whose ceiling does not beat the teacher beyond it (``allow_weak_gap`` overrides).
Everything is written into a temporary directory that is renamed into place at the end.
"""

from __future__ import annotations

import math
import os
import random
import secrets
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from aarlab.errors import UserError
from aarlab.w2s.scoring import PartScorer, mean_se, total_se
from aarlab.w2s.taskdir import FixedBaselines, Stat, TaskInfo, write_jsonl

DEFAULT_DATASET = "bigbench:multiemo/all_sentence_en"
DEFAULT_WEAK = "glove-50d"
DEFAULT_STRONG = "minilm-l6"
# Training sizes: 562 labels keep the GloVe teacher weak (0.72) so that the gap to the ceiling is wide; with
# 1,500 weak labels soft-label training recovers about a quarter of the gap (with 800 it only copied the
# teacher; measurements in the README).
DEFAULT_TRAIN_LABEL = 562
DEFAULT_TRAIN_UNLABEL = 1500
# Examples per test part (public, private, held-out): enough for a test-sampling SE of PGR ≤ 0.05 on the
# embedded default (docs/instrument.md: measured per-example spread, the arithmetic, and the time it costs).
DEFAULT_TEST = 4000
DEFAULT_SEEDS = 3
# Ceiling seeds on the held-out split: one, because each costs a fine-tune plus inference on a test part
# (≈ 115 CPU-seconds, a fifth of prepare on the default). Its seed noise (≈ 0.002 accuracy, 0.015 PGR) is far below
# the held-out test-sampling SE; the expected PGR does not depend on it.
DEFAULT_HELDOUT_SEEDS = 1
DEFAULT_PUBLIC_SHARE = 0.5
# All examples the default draws: train_label + 2 × train_unlabel (main, held-out) + 3 test parts. A legacy
# ``size`` scales the default sizes by size / DEFAULT_SIZE, so DEFAULT_SIZE gives exactly the defaults.
DEFAULT_SIZE = DEFAULT_TRAIN_LABEL + 2 * DEFAULT_TRAIN_UNLABEL + 3 * DEFAULT_TEST
# Bumped when what prepare writes changes meaning, so that caches keyed by it are made again.
# 2: the held-out ceiling is trained on heldout_unlabel (before: on train_unlabel, which made every verified
#    PGR look worse than its claim).
# 3: equal design (held-out split of the main split's sizes), test parts sized for precision, the split
#    drawn from a secret kept in private/split.json, the signal check.
# 4: the strong model trains and predicts under bf16 autocast where the CPU computes bf16 natively (recorded
#    as extra.precision; part of the cache key through ``numerics()``), so the ceiling shares the methods' numerics.
PREPARE_VERSION = 4
# The ceiling must beat the teacher by this many noise SEs (test sampling and seeds) on every part.
GAP_Z = 3.0


def split_sizes(size: int | None = None, train_label: int | None = None, train_unlabel: int | None = None,
                test: int | None = None, public_share: float = DEFAULT_PUBLIC_SHARE) -> dict[str, int]:
    """Example counts per split. Explicit sizes win; else ``size`` scales the defaults; else the defaults.

    ``test`` is the size of one test part: the public part and the held-out test have ``test`` examples, the
    private part ``test · (1 − public_share) / public_share`` (``test`` at the default share of one half).
    """
    if size is not None and all(v is None for v in (train_label, train_unlabel, test)):
        scale = size / DEFAULT_SIZE
        # Rounded down, so that the scaled sizes never add up to more than ``size``.
        train_label, train_unlabel, test = (int(default * scale) for default in
                                            (DEFAULT_TRAIN_LABEL, DEFAULT_TRAIN_UNLABEL, DEFAULT_TEST))
    train_label = DEFAULT_TRAIN_LABEL if train_label is None else train_label
    train_unlabel = DEFAULT_TRAIN_UNLABEL if train_unlabel is None else train_unlabel
    test = DEFAULT_TEST if test is None else test
    private = int(round(test * (1 - public_share) / public_share))
    sizes = {"train_label": train_label, "train_unlabel": train_unlabel, "test": test + private,
             "heldout_unlabel": train_unlabel, "heldout_test": test}
    if min(train_label, train_unlabel, test, private) < 2:
        what = f"--size {size} is" if size is not None else "these sizes are"
        raise UserError(f"{what} too small: every split and test part needs at least 2 examples "
                        f"(got {sizes}, private part {private})")
    return sizes


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"{out} is not empty; pass --force to replace it")


def _rows(examples, with_label: bool) -> list[dict]:
    out = []
    for ex in examples:
        row = {"id": ex.id, "text": ex.text}
        row.update({k: v for k, v in ex.fields.items() if k not in ("id", "text", "label") and isinstance(v, str)})
        if with_label:
            row["label"] = ex.label
        out.append(row)
    return out


def _accuracies(predictions: list[list[int]], labels: list[int]) -> Stat:
    accs = [sum(p == y for p, y in zip(pred, labels, strict=True)) / len(labels) for pred in predictions]
    mean, se = mean_se(accs)
    return Stat(mean=mean, se=se, n=len(accs))


def part_assignment(n_test: int, public_share: float, secret: str) -> list[str]:
    """``public`` or ``private`` per test example, drawn from the split secret (nothing public decides it)."""
    order = list(range(n_test))
    random.Random(f"parts:{secret}").shuffle(order)
    public = set(order[: max(1, int(round(public_share * n_test)))])
    return ["public" if i in public else "private" for i in range(n_test)]


def signal_check(labels: dict[str, list[int]], baseline, parts: list[str]) -> dict[str, dict]:
    """Gap (ceiling − weak accuracy), its noise and the PGR resolution on each test part.

    ``noise`` combines the paired bootstrap SE of the gap over test examples with the seeds' SE of the two
    accuracies. ``pgr_se_reference`` is the test-sampling SE of PGR for a method that differs from the
    teacher on as many examples as the ceiling does (``sqrt(mean((c − w)²) / n) / gap``); twice it is the
    smallest PGR difference the part resolves.
    """
    import numpy as np

    where = {"public": ("test", "public"), "private": ("test", "private"), "heldout": ("heldout_test", None)}
    out = {}
    for name, (split, part) in where.items():
        index = None if part is None else np.flatnonzero(np.asarray(parts) == part)
        scorer = PartScorer(labels[split], baseline["weak"][split], baseline["ceiling"][split], index, name)
        y = scorer.labels
        seed_se = total_se(*(mean_se([float(np.mean(np.asarray(run)[scorer.index] == y)) for run in
                                      baseline[role][split]])[1] for role in ("weak", "ceiling")))
        gap, test_se = scorer.gap, scorer.gap_se()
        spread = math.sqrt(float(np.mean((scorer.ceiling_correct - scorer.weak_correct) ** 2)))
        # a gap that is zero up to float rounding of the seed means makes PGR undefined, not astronomically noisy
        reference = spread / math.sqrt(scorer.n) / gap if gap > 1e-9 else math.inf
        out[name] = {"n": scorer.n, "weak_acc": scorer.weak_acc, "ceiling_acc": scorer.ceiling_acc, "gap": gap,
                     "gap_test_se": test_se, "gap_seed_se": seed_se, "noise": total_se(test_se, seed_se),
                     "pgr_se_reference": reference, "resolvable_pgr_difference": 2 * reference}
    return out


def _refuse_weak_gap(dataset: str, signal: dict[str, dict], weak: str, strong: str) -> None:
    bad = {name: s for name, s in signal.items() if not s["gap"] > GAP_Z * s["noise"]}
    if not bad:
        return
    detail = "; ".join(f"{name} part (n={s['n']}): weak {s['weak_acc']:.3f}, ceiling {s['ceiling_acc']:.3f}, "
                       f"gap {s['gap']:+.3f} ± {s['noise']:.3f}" for name, s in bad.items())
    raise UserError(
        f"{dataset}: the strong ceiling ({strong}) does not beat the weak teacher ({weak}) beyond noise — {detail} "
        f"(the gap must exceed {GAP_Z:g} × its noise, test sampling and seeds combined), so PGR would measure "
        f"noise. Fix it with more data (--test for the test parts, --train-unlabel for the ceiling), a weaker "
        f"teacher (--train-label) or another model pair (--weak/--strong); --allow-weak-gap writes it anyway")


def prepare(dataset: str = DEFAULT_DATASET, out: Path | str = "task", size: int | None = None,
            seeds: int = DEFAULT_SEEDS, weak: str = DEFAULT_WEAK, strong: str = DEFAULT_STRONG, seed: int = 0,
            force: bool = False, public_share: float = DEFAULT_PUBLIC_SHARE, name: str | None = None,
            progress: bool = True, log: Callable[[str], None] | None = None, *, train_label: int | None = None,
            train_unlabel: int | None = None, test: int | None = None, heldout_seeds: int | None = None,
            allow_weak_gap: bool = False, split_secret: str | None = None) -> Path:
    """Prepare a task directory at ``out`` and return its path (see the module docstring).

    Sizes: ``train_label``, ``train_unlabel`` and ``test`` (per part), or a legacy ``size`` that scales the
    defaults (``split_sizes``). ``heldout_seeds`` (default ``DEFAULT_HELDOUT_SEEDS``): held-out ceilings.
    ``split_secret`` reproduces an earlier task's split exactly (it is in that task's ``private/split.json``).
    """
    from aarlab.w2s.datasets import load_dataset
    from aarlab.w2s.models import check_model, intermediate_for

    out = Path(out)
    log = log or (lambda message: None)
    heldout_seeds = DEFAULT_HELDOUT_SEEDS if heldout_seeds is None else heldout_seeds
    if seeds < 1 or heldout_seeds < 1:
        raise UserError("--seeds (and the held-out ceiling's seeds) must be at least 1")
    if not 0 < public_share < 1:
        raise UserError("the public share of the test set must be between 0 and 1")
    check_model(weak)
    check_model(strong)
    _check_out(out, force)
    sizes = split_sizes(size, train_label, train_unlabel, test, public_share)
    secret = split_secret or secrets.token_hex(16)
    started = time.time()

    examples = load_dataset(dataset, seed=seed)
    spaces = {ex.label_space for ex in examples}
    if len(spaces) != 1:
        raise UserError(f"dataset {dataset} mixes label spaces {sorted(spaces)}")
    label_space = list(next(iter(spaces)))
    total = sum(sizes.values())
    if len(examples) < total:
        raise UserError(f"dataset {dataset} has {len(examples)} examples; the sizes {sizes} ask for {total} "
                        "(lower --test or the training sizes)")
    # Keyed by the secret too: with the seed alone, anyone holding the public dataset could recompute which
    # examples trained the teacher and which form the hidden held-out split.
    rng = random.Random(f"prepare:{seed}:{secret}")
    examples = list(examples)
    rng.shuffle(examples)
    parts, start = {}, 0
    for split, n in sizes.items():
        parts[split] = examples[start:start + n]
        start += n
    log(f"{dataset}: {len(examples)} examples, using " + ", ".join(f"{k} {v}" for k, v in sizes.items()))

    texts = {split: [ex.text for ex in part] for split, part in parts.items()}
    labels = {split: [ex.label for ex in part] for split, part in parts.items()}
    baseline = {"weak": {"test": [], "heldout_test": []}, "ceiling": {"test": [], "heldout_test": []}}
    weak_soft: dict[str, list[list[float]]] = {}
    run = _ProgressTrainer(progress)
    with run.context():
        # The weak teacher is one model for both splits (its soft labels are the task). The ceiling is the
        # strong model trained on the ground truth of the examples a method learns from: train_unlabel for
        # the main split, heldout_unlabel (the same size) for the held-out one, so that a verified PGR
        # compares like with like.
        plan = (("weak", weak, "train_label", ("test", "heldout_test"), seeds),
                ("ceiling", strong, "train_unlabel", ("test",), seeds),
                ("ceiling", strong, "heldout_unlabel", ("heldout_test",), heldout_seeds))
        for role, model_name, train_split, scored_splits, n_seeds in plan:
            for s in range(n_seeds):
                model = _get(model_name, label_space)
                targets = _one_hot(labels[train_split], len(label_space))
                what = role if train_split != "heldout_unlabel" else "held-out ceiling"
                run.fit(model, texts[train_split], targets, seed=seed * 1000 + s, description=f"{what} ({model_name}) seed {s}")
                for split in scored_splits:
                    baseline[role][split].append([int(i) for i in model.predict_proba(texts[split]).argmax(axis=1)])
                if role == "weak" and s == 0:
                    # One teacher defines the task: its soft labels are what every method learns from.
                    for split in ("train_unlabel", "heldout_unlabel"):
                        weak_soft[split] = [[round(float(p), 6) for p in row] for row in model.predict_proba(texts[split])]
                split = scored_splits[0]
                log(f"{what} seed {s}: {split} accuracy "
                    f"{_accuracies([baseline[role][split][-1]], labels[split]).mean:.3f}")

    test_parts = part_assignment(sizes["test"], public_share, secret)
    signal = signal_check(labels, baseline, test_parts)
    for part, s in signal.items():
        log(f"signal, {part} part (n={s['n']}): gap {s['gap']:.3f} ± {s['noise']:.3f} "
            f"(weak {s['weak_acc']:.3f}, ceiling {s['ceiling_acc']:.3f}); PGR test SE ≈ {s['pgr_se_reference']:.3f}, "
            f"resolves PGR differences ≥ {s['resolvable_pgr_difference']:.2f}")
    if not allow_weak_gap:
        _refuse_weak_gap(dataset, signal, weak, strong)

    fixed = FixedBaselines(weak_acc=_accuracies(baseline["weak"]["test"], labels["test"]),
                           ceiling_acc=_accuracies(baseline["ceiling"]["test"], labels["test"]))
    heldout_fixed = FixedBaselines(weak_acc=_accuracies(baseline["weak"]["heldout_test"], labels["heldout_test"]),
                                   ceiling_acc=_accuracies(baseline["ceiling"]["heldout_test"], labels["heldout_test"]))
    public_signal = {k: round(v, 4) if k != "n" else v for k, v in signal["public"].items()}
    extra = {"intermediate_model": intermediate_for(strong), "public_share": public_share,
             "prepare_version": PREPARE_VERSION, "signal": public_signal,
             "precision": numerics(strong),
             "prepare_seconds": round(time.time() - started, 1)}
    info = TaskInfo(
        name=name or dataset.split(":", 1)[-1].split("?")[0].replace("/", "-"), dataset=dataset,
        label_space=label_space, weak_model=weak, strong_model=strong, sizes=sizes, seed=seed, fixed=fixed,
        description=f"{dataset}: weak {weak} (trained on {sizes['train_label']} labelled examples) → strong {strong}",
        extra=extra,
    )
    split_record = {"secret": secret, "seed": seed, "public_share": public_share, "sizes": sizes,
                    "seeds": seeds, "heldout_seeds": heldout_seeds, "allow_weak_gap": allow_weak_gap,
                    "signal": signal}
    _write(out, force, info, heldout_fixed, parts, weak_soft, baseline, test_parts, split_record)
    return out


def numerics(strong: str = DEFAULT_STRONG) -> str:
    """``"bf16"`` or ``"fp32"``: the precision the strong model trains and predicts in on this machine.

    Part of the prepared tasks' cache keys, so a task prepared in one precision is never reused by a machine
    (or an ``AARLAB_PRECISION`` setting) that runs methods in the other: the ceiling shares their numerics.
    """
    try:
        from aarlab.w2s.train import precision_name

        model = _get(strong, ("a", "b"))
    except Exception:  # no torch (a light install) or an unknown model: whatever prepare says later
        return "fp32"
    config = getattr(model, "config", None)
    return precision_name(getattr(config, "precision", "fp32"), getattr(model, "device", "cpu"))


def _get(name, label_space):
    from aarlab.w2s.models import get_model

    return get_model(name, label_space)


def _one_hot(labels: list[int], k: int):
    import numpy as np

    return np.eye(k, dtype=np.float32)[labels]


class _ProgressTrainer:
    """Trains with a rich progress bar (or silently)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = None

    def context(self):
        if not self.enabled:
            return nullcontext()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn())
        return self.progress

    def fit(self, model, texts, targets, seed, description):
        if self.progress is None:
            model.fit(texts, targets, loss="xent", seed=seed)
            return
        task = self.progress.add_task(description, total=None)
        model.fit(texts, targets, loss="xent", seed=seed,
                  progress=lambda step, total: self.progress.update(task, completed=step, total=total))


def _write(out: Path, force: bool, info: TaskInfo, heldout_fixed: FixedBaselines, parts, weak_soft, baseline,
           test_parts: list[str], split_record: dict) -> None:
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for heldout in (False, True):
            private = tmp / "private" / "heldout" if heldout else tmp / "private"
            public = private / "public" if heldout else tmp / "public"
            unlabel_split, test_split = ("heldout_unlabel", "heldout_test") if heldout else ("train_unlabel", "test")
            unlabel_rows = _rows(parts[unlabel_split], with_label=False)
            for row, soft in zip(unlabel_rows, weak_soft[unlabel_split], strict=True):
                row["weak_soft_label"] = soft
            write_jsonl(public / "train_unlabel.jsonl", unlabel_rows)
            write_jsonl(public / "test.jsonl", _rows(parts[test_split], with_label=False))
            split_info = info
            if heldout:
                signal = {k: round(v, 4) if k != "n" else v for k, v in split_record["signal"]["heldout"].items()}
                split_info = info.model_copy(update={"fixed": heldout_fixed,
                                                     "extra": {**info.extra, "signal": signal}})
            (public / "task.json").write_text(split_info.model_dump_json(indent=2))
            # The held-out test is one part, scored whole (it is the size of one main test part).
            test = parts[test_split]
            write_jsonl(private / "test_labels.jsonl", [
                {"id": ex.id, "label": ex.label, "part": "heldout" if heldout else part}
                for ex, part in zip(test, ["heldout"] * len(test) if heldout else test_parts, strict=True)])
            write_jsonl(private / "train_unlabel_labels.jsonl",
                        [{"id": ex.id, "label": ex.label} for ex in parts[unlabel_split]])
            (private / "baseline_predictions.json").write_text(json.dumps(
                {"weak": baseline["weak"][test_split], "ceiling": baseline["ceiling"][test_split]}))
        write_jsonl(tmp / "private" / "train_label.jsonl", _rows(parts["train_label"], with_label=True))
        (tmp / "private" / "split.json").write_text(json.dumps(split_record, indent=2))
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        if out.exists():
            if not force:
                raise UserError(f"{out} appeared while preparing; pass --force to replace it")
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
