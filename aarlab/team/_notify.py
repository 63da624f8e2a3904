"""Monitor notifications: with ``monitors.notify_agents``, an agent hears about flags on its own work."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_FLAG_ID = re.compile(r"\[lab monitor\] flag #(\d+)")


def attach_flag_notes(runner, agent_name: str, monitors, transcript_path: Path, admin_client: Callable,
                      note: Callable[[str], None]) -> Callable[[], None] | None:
    """Between the agent's steps (at most every ``monitors.interval_s``), ask the lab for new flags on its work.

    The messages ride on the note after its next turn (``Agent.note_sources``: the last tool result, or a
    user message), so they are in the transcript: which flags an agent was told about is read back from there
    on resume, and each flag is told once. Returns a closer (its admin client), or None when it cannot run.
    """
    try:
        from aarlab.monitor import agent_notifications
    except ImportError as exc:
        note(f"monitors: cannot notify agents ({exc})")
        return None
    from aarlab.agent.transcript import read_transcript

    told = [int(m) for r in read_transcript(transcript_path) if r.get("type") == "turn"
            for m in _FLAG_ID.findall(str(r.get("note") or ""))]
    since = {"id": max(told, default=0), "at": 0.0}
    admin = admin_client()

    def flag_messages(step: int) -> list[str]:
        if time.monotonic() - since["at"] < monitors.interval_s:
            return []
        since["at"] = time.monotonic()
        try:
            messages = agent_notifications(admin, agent_name, monitors, since["id"])
        except Exception as exc:  # the lab being slow must not cost the agent its step
            log.warning("%s: cannot read its flags: %s", agent_name, exc)
            return []
        for message in messages:
            since["id"] = max([since["id"], *map(int, _FLAG_ID.findall(message))])
        return messages

    runner.note_sources.append(flag_messages)
    return admin.close
