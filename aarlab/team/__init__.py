"""aarlab.team: a team of researcher agents on one lab — configs, directions, supervision, resume, live view.

    from aarlab.config import RunConfig
    from aarlab.team import create_run, TeamSession

    config = RunConfig.load("examples/default.yaml", {"team.agents": 3})
    create_run(config, Path("runs/r1"))      # checks everything first; nothing is left behind on an error
    TeamSession(Path("runs/r1")).run()        # also what `aarlab resume runs/r1` does

Importing this package registers the offline ``demo`` researcher (``scripted:demo``) with ``aarlab.llm``.
"""

from aarlab.team import _demo  # noqa: F401  (registers scripted:demo)
from aarlab.team._demo import DemoResearcher, make_demo_model
from aarlab.team._directions import (
    BUILTIN_DIRECTIONS,
    Direction,
    assign_directions,
    builtin_direction,
    builtin_directions,
    load_direction,
)
from aarlab.team._rundir import create_run, default_run_dir, prepared_task
from aarlab.team._state import AgentState, RunState
from aarlab.team._team import TeamSession

__all__ = [
    "BUILTIN_DIRECTIONS",
    "AgentState",
    "DemoResearcher",
    "Direction",
    "RunState",
    "TeamSession",
    "assign_directions",
    "builtin_direction",
    "builtin_directions",
    "create_run",
    "default_run_dir",
    "load_direction",
    "make_demo_model",
    "prepared_task",
]
