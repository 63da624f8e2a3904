"""aarlab.monitor: reward-hacking detectors and the flags they raise.

    from aarlab.monitor import MonitorWorker, MonitorConfig, registered_detectors
    worker = MonitorWorker(run_dir, admin_client, MonitorConfig(notify_agents=True))
    worker.run_once()                      # or worker.run_forever(stop_event) in a thread

Detectors are small registered functions (``@detector("name", kind)``) over an agent's submissions or its
transcript's tool calls; each returns ``Finding`` s that become flags (detector, severity, evidence, agent,
time) in the lab's flag store. Severe flags quarantine a leaderboard entry until an admin clears or
confirms it (``aarlab flags RUN_DIR``). See ``docs/readme/monitor.md``.
"""

from aarlab.monitor._base import (
    SEVERITIES,
    Action,
    DetectorInfo,
    Finding,
    MonitorContext,
    Severity,
    SubmissionView,
    detector,
    get_detector,
    registered_detectors,
    run_detector,
)
from aarlab.monitor._judge import RUBRIC, llm_judge
from aarlab.monitor._transcripts import actions_from_record, read_actions
from aarlab.monitor._worker import (
    MonitorConfig,
    MonitorWorker,
    agent_notifications,
    flag_payload,
    raise_flag,
    scan_actions,
    scan_submissions,
    task_context,
)

__all__ = [
    "RUBRIC",
    "SEVERITIES",
    "Action",
    "DetectorInfo",
    "Finding",
    "MonitorConfig",
    "MonitorContext",
    "MonitorWorker",
    "Severity",
    "SubmissionView",
    "actions_from_record",
    "agent_notifications",
    "detector",
    "flag_payload",
    "get_detector",
    "llm_judge",
    "raise_flag",
    "read_actions",
    "registered_detectors",
    "run_detector",
    "scan_actions",
    "scan_submissions",
    "task_context",
]
