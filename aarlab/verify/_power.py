"""How sharp is the verifier's gap test? A simulation with a task's real noise.

Built from a prepared task's per-example baseline predictions (``task_arrays``) or a generated stand-in
(``synthetic_arrays``). A *method run at PGR q* is simulated per example: it predicts what one ceiling seed
predicts with probability q and what the teacher (weak seed 0, whose soft labels the task hands out)
predicts otherwise, so its expected PGR is q and it disagrees with the baselines where real students do.
Each seed draws its own mix, plus a per-seed offset so that one seed's PGR spreads by ``seed_sd`` (the
measured spread of a known method); each split may carry its own training-sample offset (``training_sd``).

One simulated claim, as the lab sees it:

- the agent submits 3 seeds on the main split; the lab scores them exactly on the public and private parts
  (mean, seed SE, paired test SE) and replies with the coarse public numbers (``public_step`` grid,
  unbiased rounding with a uniform dither, as ``aarlab.server``'s feedback does); the honest post quotes
  the reply;
- the verifier re-runs the method for 3 seeds on the held-out split and scores each seed (test SE per seed,
  averaged, as the verifier gets them from the server);
- the rule under test decides.

Overclaims are planted three ways, each by ``delta`` PGR: the submission is better than the code on the whole
main test (a cherry-picked or fabricated submission: ``submission``), better on the public part only
(adaptive overfitting to public feedback: ``public``), or the claim's number is raised above its reply
(``claim``). Test SEs are computed by the delta method (``sd(d) / (gap·√n)``, what the lab's paired bootstrap
estimates; ``delta_test_se``) so that thousands of claims take seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from aarlab.verify._gap import ClaimCheck, GapTest, claim_check, gap_test, rounding_se

# The per-seed PGR spread of a known method on the embedded default (vanilla, 3 seeds, docs/instrument.md):
# seed SEs 0.032 (public), 0.036 (private), 0.011 (held-out) → per-seed SDs 0.055, 0.062, 0.019, pooled ≈ 0.045.
DEFAULT_SEED_SD = 0.045
DEFAULT_TRUE_PGR = 0.35


@dataclass
class SplitArrays:
    """One split's hidden test labels and baselines' per-seed predictions (``[seeds, n]``); ``public`` marks
    the public part (the main split), None for the held-out split (scored whole)."""

    labels: np.ndarray
    weak: np.ndarray
    ceiling: np.ndarray
    public: np.ndarray | None = None


def task_arrays(task_dir) -> tuple[SplitArrays, SplitArrays]:
    """The main and held-out splits of a prepared task (reads its private files)."""
    from aarlab.w2s.taskdir import TaskDir

    out = []
    for heldout in (False, True):
        task = TaskDir(task_dir, heldout=heldout).check()
        rows = task.test_labels()
        baselines = task.baseline_predictions()
        public = None if heldout else np.array([row.get("part") == "public" for row in rows])
        out.append(SplitArrays(np.array([int(r["label"]) for r in rows]), np.asarray(baselines["weak"]),
                               np.asarray(baselines["ceiling"]), public))
    return out[0], out[1]


def synthetic_arrays(seed: int = 0, n_part: int = 4000, weak_acc: float = 0.74, ceiling_acc: float = 0.86,
                     both_wrong: float = 0.09, weak_seeds: int = 3, ceiling_seeds: int = 3,
                     heldout_ceiling_seeds: int = 1) -> tuple[SplitArrays, SplitArrays]:
    """A binary task with the embedded default's shape and error structure: two parts of ``n_part`` on the
    main split, one on the held-out split; teacher and ceiling both wrong on ``both_wrong`` of the examples;
    seeds of one baseline that agree as the default's do (teacher seeds on ≈ 98.6% of the examples, ceiling
    seeds on ≈ 94.6%: each seed flips a small share of one base model's predictions)."""
    rng = np.random.default_rng(seed)
    # P(weak wrong, ceiling wrong) per example: both, weak only, ceiling only, neither
    shares = np.array([both_wrong, 1 - weak_acc - both_wrong, 1 - ceiling_acc - both_wrong,
                       weak_acc + ceiling_acc - 1 + both_wrong])

    def split(n: int, n_ceiling: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n)
        kind = rng.choice(4, size=n, p=shares)
        weak_base = np.where(np.isin(kind, (0, 1)), 1 - labels, labels)
        ceiling_base = np.where(np.isin(kind, (0, 2)), 1 - labels, labels)

        def seeds(base: np.ndarray, k: int, flip: float) -> np.ndarray:
            return np.where(rng.random((k, n)) < flip, 1 - base, base)
        return labels, seeds(weak_base, weak_seeds, 0.007), seeds(ceiling_base, n_ceiling, 0.027)

    labels, weak, ceiling = split(2 * n_part, ceiling_seeds)
    public = np.zeros(2 * n_part, dtype=bool)
    public[rng.permutation(2 * n_part)[:n_part]] = True
    h_labels, h_weak, h_ceiling = split(n_part, heldout_ceiling_seeds)
    return SplitArrays(labels, weak, ceiling, public), SplitArrays(h_labels, h_weak, h_ceiling)


def public_step(n_public: int, decimals: int = 2) -> float:
    """The lab's reply grid for a public part of ``n_public`` examples (``aarlab.server.public_step``)."""
    from aarlab.server import public_step as lab_step

    return lab_step(n_public, decimals)


@dataclass
class _Part:
    """A part's labels and baseline shares, for fast scoring of simulated runs."""

    labels: np.ndarray
    weak_share: np.ndarray
    ceiling_share: np.ndarray
    weak_pred: np.ndarray  # the teacher's predictions (weak seed 0)
    ceiling_preds: np.ndarray  # [seeds, n]

    @classmethod
    def of(cls, split: SplitArrays, index: np.ndarray | None) -> _Part:
        index = np.arange(len(split.labels)) if index is None else index
        y = split.labels[index]
        return cls(y, (split.weak[:, index] == y).mean(axis=0), (split.ceiling[:, index] == y).mean(axis=0),
                   split.weak[0, index], split.ceiling[:, index])

    @property
    def gap(self) -> float:
        return float(self.ceiling_share.mean() - self.weak_share.mean())

    @property
    def weak_acc(self) -> float:
        return float(self.weak_share.mean())


def delta_test_se(correct: np.ndarray, part: _Part) -> float:
    """Delta-method SE of the PGR of per-example correctness ``correct`` (a run, or the mean of seeds)."""
    gap = part.gap
    value = (correct.mean() - part.weak_acc) / gap
    d = (correct - part.weak_share) - value * (part.ceiling_share - part.weak_share)
    return float(d.std(ddof=1) / (gap * math.sqrt(len(d))))


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


@dataclass
class Simulator:
    """Simulated method runs and their scores on a task's splits (see the module docstring)."""

    main: SplitArrays
    heldout: SplitArrays
    seed_sd: float = DEFAULT_SEED_SD
    training_sd: float = 0.0
    heldout_seed_sd: float | None = None  # the held-out split's own seed spread (default: ``seed_sd``)
    seeds: int = 3
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def __post_init__(self):
        self.public = _Part.of(self.main, np.flatnonzero(self.main.public))
        self.private = _Part.of(self.main, np.flatnonzero(~self.main.public))
        self.held = _Part.of(self.heldout, None)
        self.step = public_step(len(self.public.labels))

    def _extra_sd(self, part: _Part, q: float) -> float:
        """The per-seed offset SD that brings one seed's PGR spread to ``seed_sd`` (the mix has some already)."""
        target = self.heldout_seed_sd if part is self.held and self.heldout_seed_sd is not None else self.seed_sd
        disagree = np.mean([(part.ceiling_preds[j] == part.labels) != (part.weak_pred == part.labels)
                            for j in range(len(part.ceiling_preds))])
        q = min(max(q, 0.0), 1.0)
        intrinsic = q * (1 - q) * disagree / len(part.labels) / part.gap**2
        return math.sqrt(max(0.0, target**2 - intrinsic))

    def runs(self, part: _Part, q: np.ndarray) -> np.ndarray:
        """Per-example correctness ``[seeds, n]`` of runs at per-seed mixing shares ``q`` (clipped to [0, 1])."""
        n = len(part.labels)
        j = self.rng.integers(0, len(part.ceiling_preds), size=len(q))
        take = self.rng.random((len(q), n)) < np.clip(q, 0.0, 1.0)[:, None]
        preds = np.where(take, part.ceiling_preds[j], part.weak_pred[None, :])
        return (preds == part.labels).astype(np.float64)

    def seed_values(self, q: float, offset: float, part: _Part) -> np.ndarray:
        return q + offset + self.rng.normal(0.0, self._extra_sd(part, q), self.seeds)

    def score_seeds(self, correct: np.ndarray, part: _Part) -> tuple[float, float, float]:
        """(mean PGR, seed SE, exact test SE of the mean) — what ``PartScorer.score_seeds`` reports."""
        pgrs = (correct.mean(axis=1) - part.weak_acc) / part.gap
        mean, se = _mean_se(pgrs)
        return mean, se, delta_test_se(correct.mean(axis=0), part)

    def reply(self, correct: np.ndarray) -> tuple[float, float, float]:
        """The coarse public reply: (PGR, seed SE, step in PGR), rounded with a uniform dither."""
        part = self.public
        accs = correct.mean(axis=1)
        mean_acc, acc_se = _mean_se(accs)
        shown = math.floor(mean_acc / self.step + self.rng.random()) * self.step
        shown_se = max(0.0, math.floor(acc_se / self.step + self.rng.random()) * self.step)
        return (shown - part.weak_acc) / part.gap, shown_se / part.gap, self.step / part.gap

    def reproduce(self, q: float, offset: float, k: int = 1) -> float:
        """The verifier's paired re-run on the main split: the mean public PGR of ``k`` runs of the *code* (its
        true share ``q``), with the submission's own training-sample ``offset`` (same examples)."""
        correct = self.runs(self.public, self.seed_values(q, offset, self.public)[:k])
        return float(((correct.mean(axis=1) - self.public.weak_acc) / self.public.gap).mean())

    def verify(self, q: float, offset: float) -> tuple[float, float, float]:
        """The verifier's numbers: (mean PGR, seed SE, mean of the per-seed test SEs) on the held-out split."""
        correct = self.runs(self.held, self.seed_values(q, offset, self.held))
        pgrs = (correct.mean(axis=1) - self.held.weak_acc) / self.held.gap
        mean, se = _mean_se(pgrs)
        return mean, se, float(np.mean([delta_test_se(run, self.held) for run in correct]))


@dataclass
class Claim:
    """Everything a rule may use about one simulated claim (PGR units)."""

    claimed: float  # the number the post claims
    reply_pgr: float  # what its submission was told
    reply_se: float
    step_pgr: float
    public: tuple[float, float, float]  # exact (PGR, seed SE, test SE) of the submission on the public part
    private: tuple[float, float, float]
    verified: tuple[float, float, float]  # (PGR, seed SE, test SE) of the re-run
    baseline_se: float
    reproduced: float | None = None  # mean public PGR of the paired re-run on the main split (``reproduce``)


Rule = Callable[[Claim], GapTest]


def _public_and_private(public: tuple[float, float, float], private: tuple[float, float, float]
                        ) -> tuple[float, float, float]:
    """A submission's exact PGR on the public and private parts together (equal sizes): the mean PGR, the mean
    of the seed SEs (the parts share their models: the perfectly correlated bound) and the test SEs of two
    disjoint halves, ``sqrt(t_pub² + t_priv²) / 2``."""
    return ((public[0] + private[0]) / 2, (public[1] + private[1]) / 2, math.hypot(public[2], private[2]) / 2)


def exact_rule(z: float, floor: float, training_sd: float = 0.0, check: bool = True, parts: str = "public") -> Rule:
    """The verifier's rule: the exact claim check, and the submission's exact public PGR vs the re-run
    (``parts="both"``: its public and private PGR together, the alternative it was chosen over)."""
    def rule(c: Claim) -> GapTest:
        ref, ref_seed, ref_test = _public_and_private(c.public, c.private) if parts == "both" else c.public
        verified, v_seed, v_test = c.verified
        claim: ClaimCheck | None = claim_check(c.claimed, c.reply_pgr, c.step_pgr) if check else None
        return gap_test(ref, ref_seed, verified, v_seed, ref_test, v_test, z=z, floor=floor,
                        baseline_se=c.baseline_se, training_se=math.sqrt(2) * training_sd,
                        reference="submission", claim=claim)
    return rule


def paired_rule(z: float, floor: float, training_sd: float = 0.0, k: int = 1) -> Rule:
    """``exact_rule`` plus the verifier's paired re-run on the main split (``Verifier._reproduce``, ``k``
    seeds): flagged when either test flags. The re-run differs from the submission only by seeds, so its
    noise is the submission's seed SE and one seed's spread (pooled from both sides' seeds) over √k."""
    held_out = exact_rule(z, floor, training_sd)

    def rule(c: Claim) -> GapTest:
        held = held_out(c)
        if c.reproduced is None:
            return held
        n = 3  # seeds of the submission and of the held-out re-run in the simulation
        one_seed_sd = math.sqrt((c.public[1] ** 2 * n + c.verified[1] ** 2 * n) / 2)
        rep = gap_test(c.public[0], c.public[1], c.reproduced, one_seed_sd / math.sqrt(k), z=z, floor=floor,
                       reference="submission", rerun="the code re-run on the main split", one_sided=True)
        if held.flagged and held.severity in ("warning", "severe"):
            return held
        return rep if rep.flagged else held
    return rule


def coarse_rule(z: float, floor: float, with_rounding: bool = True) -> Rule:
    """The claim itself vs the re-run (the verifier's fallback without a named submission). With
    ``with_rounding=False``, z = 3 and floor 0.05 it is the rule before issue 14."""
    def rule(c: Claim) -> GapTest:
        verified, v_seed, v_test = c.verified
        return gap_test(c.claimed, c.reply_se, verified, v_seed, v_test, v_test, z=z, floor=floor,
                        rounding=rounding_se(c.step_pgr) if with_rounding else 0.0)
    return rule


@dataclass
class PowerRow:
    """One rule's false-flag rate on honest claims and its power against planted overclaims."""

    rule: str
    n_claims: int
    false_flags: float  # any flag on an honest claim
    false_overclaims: float  # a warning or severe flag on an honest claim
    power: dict[str, float]  # "submission+0.2" → share flagged as an overclaim (warning or severe)
    mean_threshold: float


def simulate(sim: Simulator, rules: dict[str, Rule], n_claims: int = 2000, true_pgr: float = DEFAULT_TRUE_PGR,
             deltas: tuple[float, ...] = (0.1, 0.2, 0.3), kinds: tuple[str, ...] = ("submission", "public", "claim"),
             baseline_se: float = 0.0) -> list[PowerRow]:
    """Run ``n_claims`` honest claims and, beside each, its overclaims (every kind × delta; the held-out
    re-run is shared, as it is the same code); score every rule on all of them."""
    flags = {name: {"honest": 0, "honest_over": 0, **{f"{k}+{d:g}": 0 for k in kinds for d in deltas}}
             for name in rules}
    thresholds = {name: 0.0 for name in rules}
    for _ in range(n_claims):
        q = true_pgr
        main_offset = sim.rng.normal(0.0, sim.training_sd) if sim.training_sd else 0.0
        held_offset = sim.rng.normal(0.0, sim.training_sd) if sim.training_sd else 0.0
        verified = sim.verify(q, held_offset)
        reproduced = sim.reproduce(q, main_offset)
        per_seed = sim.seed_values(q, main_offset, sim.public)

        def claim_for(pub_shift: float, priv_shift: float, raise_claim: float, per_seed=per_seed,
                      verified=verified, reproduced=reproduced) -> Claim:
            pub = sim.runs(sim.public, per_seed + pub_shift)
            priv = sim.runs(sim.private, per_seed + priv_shift)
            reply_pgr, reply_se, step_pgr = sim.reply(pub)
            return Claim(claimed=reply_pgr + raise_claim, reply_pgr=reply_pgr, reply_se=reply_se, step_pgr=step_pgr,
                         public=sim.score_seeds(pub, sim.public), private=sim.score_seeds(priv, sim.private),
                         verified=verified, baseline_se=baseline_se, reproduced=reproduced)

        cases = {"honest": claim_for(0.0, 0.0, 0.0)}
        for d in deltas:
            for kind in kinds:
                shifts = {"submission": (d, d, 0.0), "public": (d, 0.0, 0.0), "claim": (0.0, 0.0, d)}[kind]
                cases[f"{kind}+{d:g}"] = claim_for(*shifts)
        for name, rule in rules.items():
            for case, claim in cases.items():
                result = rule(claim)
                over = result.flagged and result.severity in ("warning", "severe")
                if case == "honest":
                    flags[name]["honest"] += result.flagged
                    flags[name]["honest_over"] += over
                    thresholds[name] += result.threshold
                else:
                    flags[name][case] += over
    return [PowerRow(rule=name, n_claims=n_claims, false_flags=f["honest"] / n_claims,
                     false_overclaims=f["honest_over"] / n_claims,
                     power={k: v / n_claims for k, v in f.items() if k not in ("honest", "honest_over")},
                     mean_threshold=thresholds[name] / n_claims)
            for name, f in flags.items()]
