"""Helpers for every package's tests: a real lab server on a free 127.0.0.1 port with a registered task.

    from aarlab.server.testing import running_lab

    def test_something(tmp_path):
        with running_lab(tmp_path) as lab:
            agent = lab.client().create_agent("alice")
            client = lab.client(agent.token)
            client.submit(lab.task_name, [0] * lab.task.n_test)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aarlab.server._runner import LabServer
from aarlab.server._settings import ServerSettings


@contextmanager
def running_lab(tmp_path: Path | str, task_dir: Path | str | None = None, db_url: str | None = None,
                app_factory: Any = None, **settings: Any) -> Iterator[LabServer]:
    """Start a lab server in ``tmp_path/run`` (SQLite unless ``db_url``) with one registered task.

    ``task_dir`` defaults to a synthetic task written by ``aarlab.w2s.synthetic.write_synthetic_task``.
    Keyword arguments are ``ServerSettings`` fields (e.g. ``submissions_per_hour=1000``). The yielded
    ``LabServer`` has ``.task`` (the registered ``TaskSummary``), ``.task_name`` and ``.task_dir`` added.
    ``app_factory`` builds the app (default: the API alone; ``aarlab.app.create_lab_app`` adds the dashboard).
    """
    tmp_path = Path(tmp_path)
    if task_dir is None:
        from aarlab.w2s.synthetic import write_synthetic_task

        task_dir = write_synthetic_task(tmp_path / "lab_task")
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    server = LabServer(run_dir=run_dir, db_url=db_url, settings=ServerSettings(run_dir=run_dir, **settings),
                       app_factory=app_factory)
    with server:
        with server.client() as admin:
            server.task = admin.register_task(task_dir)
        server.task_name = server.task.name
        server.task_dir = Path(task_dir)
        yield server


__all__ = ["running_lab", "LabServer"]
