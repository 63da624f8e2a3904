"""Datasets for weak-to-strong tasks, found by a spec string through one registry.

>>> from aarlab.w2s.datasets import load_dataset
>>> examples = load_dataset("synthetic:500")           # doctest: +SKIP
>>> examples = load_dataset("bigbench:strategyqa")     # doctest: +SKIP

Built in: ``bigbench:<task>[/<subtask>]`` (BIG-bench, fetched once into the user cache), ``jsonl:<path>``,
``helpsteer2[:<hub id or file>]`` (pairwise chat preference), ``candidate-answers:<hub id or file>``
(True/False on a candidate answer to a math or code problem) and ``synthetic[:<n>]``.
"""

from aarlab.w2s.datasets._registry import (
    DatasetInfo,
    Example,
    dataset,
    list_datasets,
    load_dataset,
    parse_spec,
)

__all__ = ["DatasetInfo", "Example", "dataset", "list_datasets", "load_dataset", "parse_spec"]
