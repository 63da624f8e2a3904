"""Fixtures for the sandbox tests: a run-directory layout with private files and two agents' workspaces."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from aarlab.sandbox import Mount, SandboxSpec, check_backend, create

BWRAP_OK, BWRAP_REASON = check_backend("bwrap")


PRIVATE_SECRET = "PRIVATE-LABEL-7f3a9c"  # the hidden labels' content; must never show up in a sandbox
BOB_SECRET = "BOB-WORK-51d2e8"  # another agent's file


@dataclass
class Layout:
    run_dir: Path
    public: Path  # task/public, mounted at /task
    private_labels: Path  # task/private/test_labels.jsonl
    alice: Path
    bob: Path


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    run_dir = tmp_path / "run"
    public = run_dir / "task" / "public"
    private = run_dir / "task" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    (public / "task.json").write_text('{"name": "synthetic"}\n')
    labels = private / "test_labels.jsonl"
    labels.write_text(f'{{"id": "t0", "label": 1, "note": "{PRIVATE_SECRET}"}}\n')
    alice = run_dir / "workspaces" / "alice"
    bob = run_dir / "workspaces" / "bob"
    alice.mkdir(parents=True)
    bob.mkdir(parents=True)
    (bob / "notes.txt").write_text(BOB_SECRET)
    return Layout(run_dir, public, labels, alice, bob)


def make_spec(layout: Layout, **overrides) -> SandboxSpec:
    values = dict(
        workspace=layout.alice,
        mounts=[Mount(host=layout.public, target=Path("/task"))],
        name="alice",
        memory_mb=512,
        max_processes=64,
        max_file_mb=16,
        tmp_mb=64,
        default_timeout_s=30,
    )
    values.update(overrides)
    return SandboxSpec(**values)


@pytest.fixture
def bwrap_box(layout):
    if not BWRAP_OK:
        pytest.skip(f"bwrap cannot run here: {BWRAP_REASON}")
    with create("bwrap", make_spec(layout)) as sandbox:
        yield sandbox


def assert_usable(sandbox) -> None:
    """The sandbox still runs commands normally after an escape attempt."""
    result = sandbox.exec("echo still-usable && ls /task", timeout=20)
    assert result.exit_code == 0, result
    assert result.stdout == "still-usable\ntask.json\n"


def host_processes_with(marker: str) -> list[str]:
    """Command lines of host processes that contain ``marker`` (this process excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.fixture
def bwrap_required():
    if not BWRAP_OK:
        pytest.skip(f"bwrap cannot run here: {BWRAP_REASON}")


@pytest.fixture
def h():
    """The helpers above, for test modules (pytest's importlib mode does not let them import conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        make_spec=make_spec,
        assert_usable=assert_usable,
        host_processes_with=host_processes_with,
        PRIVATE_SECRET=PRIVATE_SECRET,
        BOB_SECRET=BOB_SECRET,
    )
