"""``Lab``: the lab core's operations on one store, independent of HTTP (the routers in ``_app.py`` are thin
wrappers, and ``_app.py`` alone maps the core's errors to status codes). One module per concern, joined here.
"""

from __future__ import annotations

from aarlab.server._agents import AgentOps
from aarlab.server._code_store import SnapshotOps
from aarlab.server._eval import EvalOps
from aarlab.server._flags import FlagOps, VerificationOps
from aarlab.server._forum import ForumOps
from aarlab.server._leaderboard import SORTS, LeaderboardOps


class Lab(AgentOps, EvalOps, ForumOps, SnapshotOps, VerificationOps, FlagOps, LeaderboardOps):
    """The lab: its state (``LabCore``) and every operation on it, one mixin per concern."""


__all__ = ["Lab", "SORTS"]
