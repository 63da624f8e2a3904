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

__all__ = ["DatasetInfo", "Example", "check_dataset_spec", "dataset", "list_datasets", "load_dataset", "parse_spec"]


def check_dataset_spec(spec: str) -> None:
    """Check a dataset spec without downloading anything; a ``UserError`` names the problem.

    The dataset's name must be registered; a BIG-bench task name is checked against the archive when it is
    already cached (a fresh machine downloads it only when preparing).
    """
    from aarlab.errors import UserError

    name, argument, _ = parse_spec(spec)
    known = sorted(d.name for d in list_datasets())
    if name not in known:
        raise UserError(f"unknown dataset {spec!r}; known: {', '.join(known)}")
    if name != "bigbench":
        return
    if not argument:
        raise UserError("say which BIG-bench task, e.g. bigbench:multiemo/all_sentence_en")
    from aarlab.w2s.datasets import _bigbench

    try:
        _bigbench.sdist_path(download=False)
    except UserError:
        return  # not downloaded yet: the name is checked when the task is prepared
    names = _bigbench.task_names()
    if argument.strip("/") not in names:
        near = [n for n in names if n.startswith(argument.split("/")[0])][:4]
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise UserError(f"BIG-bench has no task {argument!r}{hint}")
