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
