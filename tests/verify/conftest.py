"""Fixtures for the verifier's tests: a synthetic task, method snapshots, and honest claims."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from aarlab.verify import ComputeLimits, MethodSandbox, TaskDirScorer
from aarlab.w2s.scoring import aggregate
from aarlab.w2s.synthetic import write_synthetic_task

METHODS = Path(__file__).parent / "methods"


def make_method_tar(name: str, module: str = "method", source: str | None = None) -> bytes:
    """A snapshot (tar) holding one method file ``tests/verify/methods/<name>.py`` as ``<module>.py``."""
    data = (source if source is not None else (METHODS / f"{name}.py").read_text()).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(f"{module}.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def memorised_source(task_dir: Path) -> str:
    """The planted overfit: the true labels of the public test part (what probing recovers), 0 elsewhere."""
    rows = [json.loads(line) for line in (task_dir / "private" / "test_labels.jsonl").read_text().splitlines()]
    memorised = [r["label"] if r["part"] == "public" else 0 for r in rows]
    return (METHODS / "memorised.py").read_text().replace("MEMORISED = []", f"MEMORISED = {memorised}")


def public_claim(task_dir: Path, code_tar: bytes, seeds: int = 3) -> dict:
    """What an honest agent would claim: PGR ± SE on the public test part of the main split, over seeds."""
    scorer = TaskDirScorer(task_dir, heldout=False, part="public")
    with MethodSandbox(task_dir / "public", ComputeLimits(timeout_s=30)) as box:
        scores = [scorer.score(box.run("method", s, code_tar).predictions) for s in range(seeds)]
    stats = aggregate(scores)
    return {"pgr": stats.pgr, "pgr_se": stats.pgr_se, "seeds": seeds, "n_examples": scores[0].n_examples}


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory) -> Path:
    # 1,200 test examples: with fewer, the paired test-sampling SE of PGR on a part (~0.4 at 300) swamps even a
    # planted overfit's gap, as it would on a real task that small
    return write_synthetic_task(tmp_path_factory.mktemp("task") / "synthetic", n_unlabel=300, n_test=1200)


@pytest.fixture(scope="session")
def method_tar():
    """``method_tar(name, module="method", source=None) -> bytes``: a snapshot holding one method file."""
    return make_method_tar


@pytest.fixture(scope="session")
def memorised_tar(task_dir) -> bytes:
    """The planted overfit's snapshot (a method module named ``method``)."""
    return make_method_tar("memorised", source=memorised_source(task_dir))


@pytest.fixture(scope="session")
def honest_claim(task_dir):
    """``honest_claim(tar) -> metrics``: what an agent measures on the public test part over 3 seeds (memoised)."""
    claims: dict[bytes, dict] = {}

    def claim(tar: bytes) -> dict:
        if tar not in claims:
            claims[tar] = public_claim(task_dir, tar)
        return dict(claims[tar])

    return claim
