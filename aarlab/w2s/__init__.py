"""aarlab.w2s: the weak-to-strong supervision library.

- ``aarlab.w2s.datasets``: named datasets (BIG-bench, local JSONL, HelpSteer2-style preference, candidate answers).
- ``aarlab.w2s.models``: named models (glove-50d, minilm-l6, smollm2-135m, any ``hf:<id>`` causal LM with LoRA).
- ``aarlab.w2s.prepare``: a dataset + weak + strong model → a task directory with fixed baselines.
- ``aarlab.w2s.methods``: the known methods, each ``python -m aarlab.w2s.methods.<name> --data-dir D --out P --seed S``.
- ``score`` / ``score_task`` / ``aggregate`` / ``PartScorer``: transfer accuracy and PGR with the seed SE and the
  paired test-sampling SE (``docs/instrument.md``).

Importing this package does not import torch.
"""

from aarlab.w2s.scoring import (
    Comparison,
    PartScorer,
    Score,
    SeedStats,
    aggregate,
    compare_independent,
    part_scorer,
    pgr,
    score,
    score_task,
    total_se,
)
from aarlab.w2s.taskdir import TaskDir, TaskInfo, load_predictions, validate_predictions

__all__ = ["Comparison", "PartScorer", "Score", "SeedStats", "TaskDir", "TaskInfo", "aggregate",
           "compare_independent", "load_predictions", "part_scorer", "pgr", "score", "score_task", "total_se",
           "validate_predictions"]
