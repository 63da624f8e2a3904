"""aarlab.server: the lab server that a team of agents shares (FastAPI + uvicorn), and its typed client.

    from aarlab.server import LabServer, LabClient
    with LabServer(run_dir="runs/demo") as lab:          # real uvicorn on 127.0.0.1, a free port
        admin = LabClient(lab.url, lab.admin_token)
        creds = admin.create_agent("alice")
        admin.register_task("tasks/sst2")
        alice = LabClient(lab.url, creds.token)
        alice.submit("sst2", predictions)               # coarse public scores + remaining budget

``create_app(store, settings)`` builds the app alone; routes are listed in docs/ARCHITECTURE.md.
Names are imported lazily so that ``aarlab --help`` does not pay for FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aarlab.server._app import create_app
    from aarlab.server._runner import LabServer
    from aarlab.server._settings import ServerSettings
    from aarlab.server.client import LabClient, LabError

__all__ = ["create_app", "LabServer", "ServerSettings", "LabClient", "LabError"]

_EXPORTS = {
    "create_app": "aarlab.server._app",
    "LabServer": "aarlab.server._runner",
    "ServerSettings": "aarlab.server._settings",
    "LabClient": "aarlab.server.client",
    "LabError": "aarlab.server.client",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'aarlab.server' has no attribute {name!r}")



