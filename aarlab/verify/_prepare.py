"""Prepared tasks for generalization, made with the w2s library and cached under the user cache.

A task for ``(dataset spec, weak, strong, size)`` is prepared once (weak teacher and strong ceiling trained
over seeds, baselines stored) into ``cache_dir()/generalize/<key>/`` and reused on the next call.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

from aarlab.errors import UserError
from aarlab.w2s.methods import KNOWN_METHODS


def check_known_method(name: str) -> str:
    """A known method's short name, or a dotted module that exists; a UserError listing the known ones."""
    module = name if "." in name else f"aarlab.w2s.methods.{name}"
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise UserError(f"unknown method {name!r}; known: {', '.join(KNOWN_METHODS)} (or a dotted module name)")
    return name


def cache_key(spec: str, weak: str | None, strong: str | None, size: int | None, seeds: int | None = None) -> str:
    """The cache directory name of a prepared task. It holds ``PREPARE_VERSION``: a task prepared by an older
    ``prepare`` (other split sizes, no held-out ceiling of its own) is made again, never reused."""
    from aarlab.w2s.prepare import DEFAULT_STRONG, PREPARE_VERSION, numerics

    raw = json.dumps({"dataset": spec, "weak": weak, "strong": strong, "size": size, "seeds": seeds,
                      "prepare_version": PREPARE_VERSION, "precision": numerics(strong or DEFAULT_STRONG)},
                     sort_keys=True)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)[:40]
    return f"{slug}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def prepare_cached(spec: str, weak: str | None = None, strong: str | None = None, size: int | None = None,
                   seeds: int | None = None, cache_root: Path | None = None, log=None) -> Path:
    """The task dir for this dataset and models, prepared now if it is not in the cache yet."""
    from aarlab.paths import cache_dir
    from aarlab.w2s.taskdir import TaskDir

    root = Path(cache_root) if cache_root else cache_dir() / "generalize"
    target = root / cache_key(spec, weak, strong, size, seeds)
    if (target / "private" / "heldout" / "test_labels.jsonl").is_file():
        return TaskDir(target).check().root
    from aarlab.w2s.prepare import prepare

    kwargs = {k: v for k, v in {"weak": weak, "strong": strong, "size": size, "seeds": seeds}.items()
              if v is not None}
    # prepare writes into a temporary directory and renames it into place: a cached dir is always complete
    shutil.rmtree(target, ignore_errors=True)
    prepare(dataset=spec, out=target, progress=False, log=log, **kwargs)
    return TaskDir(target).check().root
