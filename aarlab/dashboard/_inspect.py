"""Export agents' transcripts as Inspect eval logs, so ``inspect view`` can browse them.

Each agent becomes one log with one sample: the system prompt, every assistant message with its tool
calls, every tool result (errors marked), the usage summed per model, the cost and why the agent stopped.
With ``inspect_ai`` installed (``pip install 'aarlab[inspect]'``) the log is built from its own types and
written by its writer; without it the same JSON (log format version 2) is written by hand, which
``inspect view`` and ``inspect_ai.log.read_eval_log`` read back.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aarlab.agent.transcript import read_records
from aarlab.dashboard._transcripts import transcript_files
from aarlab.errors import UserError
from aarlab.paths import atomic_write_text


def _iso(t: float | None) -> str:
    return datetime.fromtimestamp(t or time.time(), tz=UTC).isoformat()


def _stable_id(*parts: str) -> str:
    """Deterministic ids, so exporting the same run twice gives the same logs."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "aarlab:" + ":".join(parts)).hex[:22]


def transcript_to_log_dict(records: list[dict[str, Any]], agent: str, run_name: str) -> dict[str, Any]:
    """The Inspect eval-log JSON (version 2) for one agent's transcript records."""
    start = next((r for r in records if r.get("type") == "start"), {})
    config = start.get("config") or {}
    model = str(config.get("model") or config.get("model_spec") or "unknown")
    if ":" in model and "/" not in model:
        model = model.replace(":", "/", 1)  # Inspect names models provider/model
    messages: list[dict[str, Any]] = []
    if start.get("system_prompt"):
        messages.append({"role": "system", "content": str(start["system_prompt"]), "source": "input"})
    first_user = start.get("first_message") or config.get("first_message") or ""
    if first_user:
        messages.append({"role": "user", "content": str(first_user), "source": "input"})
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "input_tokens_cache_write": 0,
             "input_tokens_cache_read": 0, "total_cost": 0.0}
    last_assistant: dict[str, Any] | None = None
    stop_reason = None
    turns = 0
    jobs: list[dict[str, Any]] = []
    for rec in records:
        kind = rec.get("type")
        if kind == "turn":
            turns += 1
            a = rec.get("assistant") or {}
            content: Any = str(a.get("content") or "")
            if a.get("thinking"):
                content = [{"type": "reasoning", "reasoning": str(a["thinking"])}, {"type": "text", "text": content}]
            msg: dict[str, Any] = {
                "id": _stable_id(run_name, agent, "a", str(rec.get("step"))),
                "role": "assistant",
                "content": content,
                "source": "generate",
                "model": model,
                "metadata": {"step": rec.get("step"), "time": rec.get("time"), "cost_usd": rec.get("cost_usd")},
            }
            calls = [
                {"id": str(c.get("id")), "function": str(c.get("name")), "arguments": c.get("arguments") or {},
                 "type": "function"}
                for c in a.get("tool_calls") or []
            ]
            if calls:
                msg["tool_calls"] = calls
            messages.append(msg)
            last_assistant = msg
            names = {c["id"]: c["function"] for c in calls}
            for r in rec.get("tool_results") or []:
                tool_msg: dict[str, Any] = {
                    "role": "tool",
                    "content": str(r.get("content") or ""),
                    "tool_call_id": r.get("tool_call_id"),
                    "function": names.get(r.get("tool_call_id")),
                }
                if r.get("is_error"):
                    tool_msg["error"] = {"type": "unknown", "message": str(r.get("content") or "")[:2000]}
                messages.append(tool_msg)
            u = rec.get("usage") or {}
            usage["input_tokens"] += int(u.get("input_tokens") or 0)
            usage["output_tokens"] += int(u.get("output_tokens") or 0)
            usage["input_tokens_cache_write"] += int(u.get("cache_write_tokens") or 0)
            usage["input_tokens_cache_read"] += int(u.get("cache_read_tokens") or 0)
            usage["total_cost"] += float(rec.get("cost_usd") or 0.0) + float(rec.get("tool_cost_usd") or 0.0)
        elif kind == "compaction":
            # Inspect has no compaction message; show the summary where it happened, as the agent saw it.
            messages.append({
                "role": "user",
                "content": f"[context compacted at step {rec.get('step')}; summary the agent continued from]\n\n"
                f"{rec.get('summary', '')}",
                "source": "input",
            })
        elif kind == "job":
            # Background jobs run beside the conversation: show each start, end and loss where it happened (as the
            # harness's notes showed the agent), and keep the whole record in the sample's metadata.
            jobs.append({k: v for k, v in rec.items() if k not in ("type", "agent")})
            messages.append({
                "role": "user",
                "content": f"[job {rec.get('event')}: {rec.get('name')}] $ {rec.get('command', '')}"
                + (f" — {rec.get('state')}, exit code {rec.get('exit_code')}, {rec.get('runtime_s')} s"
                   if rec.get("event") != "start" else f" (slot {rec.get('slot')})"),
                "source": "input",
                "metadata": {"aarlab_job": True},
            })
        elif kind == "stop":
            stop_reason = rec.get("reason")
    usage["total_tokens"] = (usage["input_tokens"] + usage["output_tokens"] + usage["input_tokens_cache_write"]
                             + usage["input_tokens_cache_read"])
    times = [float(r["time"]) for r in records if r.get("time")]
    started, completed = (min(times), max(times)) if times else (None, None)
    status = "success" if stop_reason in ("done", "budget") else ("cancelled" if stop_reason == "interrupted"
                                                                  else "error" if stop_reason == "error" else "started")
    output_message = last_assistant or {"role": "assistant", "content": "", "source": "generate"}
    sample = {
        "id": agent,
        "epoch": 1,
        "input": [m for m in messages if m.get("source") == "input" and not (m.get("metadata") or {}).get("aarlab_job")]
        or "",
        "target": "",
        "messages": messages,
        "output": {
            "model": model,
            "choices": [{"message": output_message, "stop_reason": "stop" if stop_reason == "done" else "unknown"}],
            "usage": usage,
        },
        "metadata": {"agent": agent, "run": run_name, "turns": turns, "stop_reason": stop_reason,
                     "cost_usd": usage["total_cost"], "direction": config.get("direction"), "jobs": jobs},
        "model_usage": {model: usage},
        "started_at": _iso(started),
        "completed_at": _iso(completed),
        "total_time": (completed - started) if times else None,
    }
    log = {
        "version": 2,
        "status": status,
        "eval": {
            "eval_id": _stable_id(run_name, agent, "eval"),
            "run_id": _stable_id(run_name, "run"),
            "created": _iso(started),
            "task": f"aarlab/{run_name}",
            "task_id": _stable_id(run_name, "task"),
            "task_version": 0,
            "dataset": {"name": run_name, "samples": 1, "sample_ids": [agent]},
            "model": model,
            "config": {},
            "metadata": {"aarlab_agent": agent, "aarlab_run": run_name},
        },
        "plan": {"name": "aarlab", "steps": [{"solver": "aarlab_researcher", "params": {"agent": agent}}]},
        "stats": {"started_at": _iso(started), "completed_at": _iso(completed), "model_usage": {model: usage}},
        "samples": [sample],
    }
    if status == "error":
        log["error"] = {"message": f"agent stopped: {stop_reason}", "traceback": "", "traceback_ansi": ""}
    return log


def export_inspect(run_dir: Path, out_dir: Path | None = None, agents: list[str] | None = None) -> list[Path]:
    """Write one Inspect log per agent transcript of ``run_dir`` into ``out_dir`` (default ``<run>/inspect``).

    Returns the written paths. Uses ``inspect_ai``'s own model and writer when it is installed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no such run directory: {run_dir}")
    files = transcript_files(run_dir)
    if agents:
        unknown = sorted(set(agents) - set(files))
        if unknown:
            raise UserError(f"no transcript for agent(s) {', '.join(unknown)} in {run_dir}/transcripts")
        files = {a: files[a] for a in agents}
    if not files:
        raise UserError(f"no transcripts in {run_dir}/transcripts")
    out_dir = Path(out_dir) if out_dir else run_dir / "inspect"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        from inspect_ai.log import EvalLog, write_eval_log
    except ImportError:
        EvalLog = write_eval_log = None  # noqa: N806 - hand-written JSON below
    written = []
    for agent, path in files.items():
        log = transcript_to_log_dict(read_records(path).records, agent, run_dir.name)
        # Inspect lists logs by a timestamped file name; keep the agent readable in it.
        stamp = log["eval"]["created"][:19].replace(":", "-")
        target = out_dir / f"{stamp}_aarlab_{agent}.json"
        if EvalLog is not None:
            tmp = target.with_name(f".{target.name}.tmp")
            write_eval_log(EvalLog.model_validate(log), str(tmp), format="json")
            tmp.replace(target)
        else:
            atomic_write_text(target, json.dumps(log, indent=1))
        written.append(target)
    return written
