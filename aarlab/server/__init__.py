"""aarlab.server: the lab server that a team of agents shares (FastAPI + uvicorn), and its typed client.

    from aarlab.server import LabServer, LabClient
    with LabServer(run_dir="runs/demo") as lab:          # real uvicorn on 127.0.0.1, a free port
        admin = LabClient(lab.url, lab.admin_token)
        creds = admin.create_agent("alice")
        admin.register_task("tasks/sst2")
        alice = LabClient(lab.url, creds.token)
        alice.submit("sst2", predictions)               # coarse public scores + remaining budget

``create_app(store, settings)`` builds the API alone (``aarlab.app.create_lab_app`` adds the dashboard);
routes are listed in docs/ARCHITECTURE.md. The lab core's functions that other faces share — the one
leaderboard (``leaderboard_entries``), the one way to resolve a flag (``resolve_flag``) — and its domain
errors (``NotFound`` …, all ``UserError``s) are exported here too.
Names are imported lazily so that ``aarlab --help`` does not pay for FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aarlab.server._app import create_app
    from aarlab.server._auth import Principal
    from aarlab.server._errors import BudgetSpent, Conflict, Forbidden, NotFound
    from aarlab.server._errors import LabError as LabDomainError
    from aarlab.server._feedback import below_grid, public_step
    from aarlab.server._flags import resolve_flag
    from aarlab.server._leaderboard import SORTS as LEADERBOARD_SORTS
    from aarlab.server._leaderboard import leaderboard_entries
    from aarlab.server._runner import LabServer, read_or_create_secret
    from aarlab.server._settings import ServerSettings
    from aarlab.server.client import LabClient, LabError
    from aarlab.server.schemas import LeaderboardEntry

__all__ = ["create_app", "LabServer", "ServerSettings", "LabClient", "LabError", "LabDomainError", "NotFound",
           "Conflict", "Forbidden", "BudgetSpent", "resolve_flag", "leaderboard_entries", "LEADERBOARD_SORTS",
           "Principal", "read_or_create_secret", "LeaderboardEntry", "public_step", "below_grid"]

_EXPORTS = {
    "create_app": "aarlab.server._app",
    "LabServer": "aarlab.server._runner",
    "read_or_create_secret": "aarlab.server._runner",
    "Principal": "aarlab.server._auth",
    "ServerSettings": "aarlab.server._settings",
    "LabClient": "aarlab.server.client",
    "LeaderboardEntry": "aarlab.server.schemas",
    "LabError": "aarlab.server.client",
    "NotFound": "aarlab.server._errors",
    "Conflict": "aarlab.server._errors",
    "Forbidden": "aarlab.server._errors",
    "BudgetSpent": "aarlab.server._errors",
    "resolve_flag": "aarlab.server._flags",
    "leaderboard_entries": "aarlab.server._leaderboard",
    "public_step": "aarlab.server._feedback",
    "below_grid": "aarlab.server._feedback",
}
# Names that differ from the module's: (module, name there).
_RENAMED = {"LEADERBOARD_SORTS": ("aarlab.server._leaderboard", "SORTS"),
            "LabDomainError": ("aarlab.server._errors", "LabError")}


def __getattr__(name: str):
    import importlib

    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _RENAMED:
        module, attr = _RENAMED[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'aarlab.server' has no attribute {name!r}")



