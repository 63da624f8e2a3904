"""Fixtures for the monitor tests: a synthetic task, its monitor context, and small builders."""

from __future__ import annotations

import pytest

from aarlab.monitor import Action, MonitorConfig, SubmissionView, task_context
from aarlab.w2s.synthetic import write_synthetic_task


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory):
    return write_synthetic_task(tmp_path_factory.mktemp("task") / "task", n_unlabel=200, n_test=200)


@pytest.fixture
def ctx(task_dir):
    context = task_context(task_dir, MonitorConfig())
    context.agents = ["alice", "bob"]
    return context


def _act(tool: str, step: int = 1, result: str = "", agent: str = "alice", **arguments) -> Action:
    """One tool call as a transcript detector sees it."""
    return Action(agent=agent, step=step, tool=tool, arguments=arguments, result=result, call_id=f"c{step}")


def _sub(id: int, predictions: list[int], agent: str = "alice", time: float | None = None, **kw) -> SubmissionView:
    return SubmissionView(id=id, agent=agent, task="synthetic", predictions=list(predictions),
                          time=float(id * 300 if time is None else time), **kw)


@pytest.fixture
def act():
    return _act


@pytest.fixture
def sub():
    return _sub
