"""aarlab.w2s: the weak-to-strong supervision library.

- ``aarlab.w2s.datasets``: named datasets (BIG-bench, local JSONL, HelpSteer2-style preference, candidate answers).
- ``aarlab.w2s.models``: named models (glove-50d, minilm-l6, smollm2-135m, any ``hf:<id>`` causal LM with LoRA).
- ``aarlab.w2s.prepare``: a dataset + weak + strong model → a task directory with fixed baselines.
- ``aarlab.w2s.methods``: the known methods, each ``python -m aarlab.w2s.methods.<name> --data-dir D --out P --seed S``.
- ``score`` / ``score_task`` / ``aggregate``: transfer accuracy and PGR with standard errors.

Importing this package does not import torch.
"""

from aarlab.w2s.scoring import Score, SeedStats, aggregate, pgr, score, score_task
from aarlab.w2s.taskdir import TaskDir, TaskInfo, load_predictions, validate_predictions

__all__ = ["Score", "SeedStats", "TaskDir", "TaskInfo", "aggregate", "load_predictions", "pgr", "score",
           "score_task", "validate_predictions"]
