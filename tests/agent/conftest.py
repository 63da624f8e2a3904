"""Fixtures for the agent's tests: sandboxes over a tmp workspace, a synthetic task, agents on scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from aarlab.agent import Agent, AgentConfig
from aarlab.llm import get_model
from aarlab.sandbox import Mount, SandboxSpec, check_backend, create

BWRAP_OK, BWRAP_WHY = check_backend("bwrap")


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory) -> Path:
    from aarlab.w2s.synthetic import write_synthetic_task

    return write_synthetic_task(tmp_path_factory.mktemp("task") / "synthetic", n_unlabel=60, n_test=40)


@pytest.fixture
def make_sandbox(tmp_path, task_dir):
    """``make_sandbox(name, backend="process")``: a started sandbox over ``tmp_path/<name>``, /task mounted."""
    opened = []

    def make(name: str = "ws", backend: str = "process", task: Path | None = None):
        if backend == "bwrap" and not BWRAP_OK:
            pytest.skip(f"bwrap does not work here: {BWRAP_WHY}")
        workspace = tmp_path / name
        workspace.mkdir(exist_ok=True)
        public = (task or task_dir) / "public"
        spec = SandboxSpec(workspace=workspace, mounts=[Mount(host=public, target=Path("/task"))], name=name,
                           default_timeout_s=60)
        box = create(backend, spec)
        box.start()
        opened.append(box)
        return box

    yield make
    for box in opened:
        box.stop()


@pytest.fixture
def make_agent(tmp_path):
    """``make_agent(script, **config)``: an Agent on a scripted model, its transcript in tmp_path."""

    def make(script=None, *, sandbox=None, client=None, name="ada", transcript=None, model=None,
             consult_model=None, task_info=None, **config):
        cfg = AgentConfig(name=name, model="scripted", **config)
        model = model or get_model("scripted", script=list(script or []))
        return Agent(cfg, transcript=transcript or tmp_path / f"{name}.jsonl", sandbox=sandbox, client=client,
                     model=model, consult_model=consult_model, task_info=task_info)

    return make
