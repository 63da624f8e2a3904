"""aarlab.monitor: reward-hacking detectors and the flags they raise.

    from aarlab.monitor import MonitorWorker
    worker = MonitorWorker(run_dir, lab_url, admin_token, run_config.monitors)
    worker.start()          # background passes; worker.run_once() for one pass; worker.stop()

Detectors are small registered functions (``@detector("name", kind)``) over an agent's submissions or the
tool calls of its transcript; each returns ``Finding`` s that become flags (detector, severity, evidence,
agent, time) through the lab server's admin API. Severe flags quarantine a leaderboard entry until an
admin clears or confirms it (``aarlab flags RUN_DIR``). ``registered_detectors()`` lists them with their
documented parameters; ``MonitorConfig.detectors`` overrides those per run.
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
from aarlab.monitor._judge import RUBRIC, RULES, llm_judge, parse_verdict
from aarlab.monitor._transcripts import actions_from_record, read_actions, snapshot_actions, written_paths
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
    "RULES",
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
    "parse_verdict",
    "raise_flag",
    "read_actions",
    "registered_detectors",
    "run_detector",
    "scan_actions",
    "scan_submissions",
    "snapshot_actions",
    "task_context",
    "written_paths",
]
