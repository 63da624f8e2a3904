"""Helpers shared by the lab server's tests (imported as ``labhelpers``; conftest puts this folder on sys.path)."""

from __future__ import annotations

import io
import itertools
import tarfile

from sqlalchemy import func, select

from aarlab.server.client import LabClient
from aarlab.store import tables

_names = itertools.count()


def new_agent(lab, prefix: str = "agent") -> LabClient:
    creds = lab.client().create_agent(f"{prefix}{next(_names)}")
    client = LabClient(lab.url, creds.token)
    client.name = creds.name
    return client


def make_tar(files: dict[str, bytes | str], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for path, data in files.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


METHOD_FILES = {"method/__init__.py": "", "method/main.py": "import sys\nprint('predict', sys.argv)\n"}


def counts(store) -> dict[str, int]:
    """Rows per table, to check that a refused request stored nothing."""
    with store.read() as conn:
        return {name: conn.execute(select(func.count()).select_from(table)).scalar()
                for name, table in [("submissions", tables.submissions), ("posts", tables.posts),
                                    ("snapshots", tables.snapshots), ("events", tables.events),
                                    ("votes", tables.votes), ("agents", tables.agents), ("tasks", tables.tasks),
                                    ("flags", tables.flags), ("verifications", tables.verifications)]}


class ServerProcess:
    """``python -m aarlab.server`` in a subprocess (a separate interpreter, so it can be killed with -9)."""

    def __init__(self, run_dir, task_dir=None, db_url=None, extra=()):
        import subprocess
        import sys

        args = [sys.executable, "-m", "aarlab.server", "--run-dir", str(run_dir), "--port", "0",
                "--submissions-per-run", "1000000", "--submissions-per-hour", "1000000", *extra]
        if task_dir is not None:
            args += ["--task", str(task_dir)]
        if db_url is not None:
            args += ["--db", db_url]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.url = line
        from pathlib import Path

        self.admin_token = (Path(run_dir) / "admin_token").read_text().strip()

    def client(self, token=None) -> LabClient:
        return LabClient(self.url, token or self.admin_token)

    def kill(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:  # noqa: BLE001
                self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
