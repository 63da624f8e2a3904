"""Test data for the dashboard tests: a real lab server holding a small scripted run's data.

The data goes in through the real client (agents, snapshots, submissions, posts, replies, votes,
verifications, flags) and the run dir gets what the team runner writes beside it (transcripts with a torn
last line, state.json, config.yaml, a notebook), so pages and the report see what a real run leaves.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

VIEWER_TOKEN = "viewer-" + "v" * 32


def make_tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def task_labels(task_dir: Path) -> list[int]:
    path = next(Path(task_dir).rglob("test_labels.jsonl"))
    return [json.loads(line)["label"] for line in path.read_text().splitlines() if line.strip()]


def predictions_with_accuracy(labels: list[int], accuracy: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [y if rng.random() < accuracy else 1 - y for y in labels]


def transcript_records(agent: str, turns: int, start: float, tool_output: str = "ok") -> list[dict]:
    """A plausible transcript: start, turns with thoughts and tool calls (bash, submit, forum), stop."""
    records: list[dict] = [{"type": "start", "time": start, "agent": agent, "system_prompt": f"You are {agent}.",
                            "tools": [{"name": "bash"}], "config": {"model": "scripted:demo", "direction": "d"},
                            "first_message": "Begin your research."}]
    for step in range(1, turns + 1):
        name = ("submit_predictions" if step % 5 == 0 else "forum_post" if step % 7 == 0 else "bash")
        args = {"command": f"python -m method --seed {step}"} if name == "bash" else {"path": "preds.json"}
        records.append({
            "type": "turn", "time": start + step * 30, "agent": agent, "step": step,
            "assistant": {"role": "assistant", "content": f"Step {step}: trying idea {step} of {agent}.",
                          "thinking": f"thinking about step {step}",
                          "tool_calls": [{"id": f"c{step}", "name": name, "arguments": args}]},
            "tool_results": [{"role": "tool", "tool_call_id": f"c{step}", "content": f"{tool_output} {step}",
                              "is_error": step % 11 == 0}],
            "usage": {"input_tokens": 1000 + step, "output_tokens": 200}, "cost_usd": 0.01, "latency_s": 0.5,
        })
    return records


def write_transcript(path: Path, records: list[dict], torn: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
        if torn:
            fh.write('{"type": "turn", "time": 1, "agent": "x", "step": 99, "assistant": {"con')


@dataclass
class Populated:
    lab: object
    run_dir: Path
    agents: dict[str, str]  # name -> token
    post_ids: dict[str, int] = field(default_factory=dict)
    snapshot_ids: dict[str, str] = field(default_factory=dict)
    flag_ids: dict[str, int] = field(default_factory=dict)
    submission_ids: list[int] = field(default_factory=list)
    lock: object = None  # the open RUN_DIR/.lock this "session" holds (see hold_session_lock)


def hold_session_lock(run_dir: Path):
    """Hold ``RUN_DIR/.lock`` as a live ``aarlab run`` session does (``TeamSession._lock``): an flock on the
    open file plus ``pid N`` in it. Close the returned file to let the "session" die."""
    import fcntl
    import os

    handle = open(Path(run_dir) / ".lock", "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


def populate(lab) -> Populated:
    """A small team's run: 3 agents, 4 snapshots, submissions, 6 posts, verifications, 2 flags, transcripts."""
    run_dir = Path(lab.run_dir)
    admin = lab.client()
    labels = task_labels(lab.task_dir)
    directions = {"alice": "Confidence-weighted self-training on the weak labels.",
                  "bob": "Bootstrapping: train on the strong model's own confident predictions.",
                  "carol": "Auxiliary confidence loss (logconf) with a warmup schedule."}
    tokens = {name: admin.create_agent(name, direction).token for name, direction in directions.items()}
    out = Populated(lab=lab, run_dir=run_dir, agents=tokens)
    for i, (name, token) in enumerate(tokens.items()):
        client = lab.client(token)
        base = client.publish_snapshot(make_tar({"method.py": f"# {name}\nLR = 0.1\n", "README.md": f"{name}'s method\n"}),
                                       f"{name}: first version")
        better = client.publish_snapshot(
            make_tar({"method.py": f"# {name}\nLR = 0.05\nWARMUP = {i + 1}\n", "README.md": f"{name}'s method\n",
                      "notes/log.txt": "tried lr 0.05\n"}), f"{name}: lower lr", parent=base.id)
        out.snapshot_ids[name] = better.id
        out.snapshot_ids[name + "-base"] = base.id
        sub = client.submit(lab.task_name, predictions_with_accuracy(labels, 0.72 + 0.05 * i, i), snapshot_id=better.id,
                            method=f"{name}.method")
        out.submission_ids.append(sub.id)
        result = client.post("result", f"{name}'s method beats the weak teacher",
                             f"## Method\n{directions[name]}\n\nWe train with lr 0.05 and **warmup {i + 1}**.",
                             tags=["self-training", name], snapshot_id=better.id,
                             metrics={"pgr": 0.2 + 0.15 * i, "pgr_se": 0.03, "seeds": 3}, entry_point="method")
        out.post_ids[name] = result.id
        insight = client.post("insight", f"Observation from {name}", "Confidence thresholds around 0.8 help.",
                              tags=["confidence"])
        out.post_ids[name + "-insight"] = insight.id
    lab.client(tokens["bob"]).reply(out.post_ids["alice"], "Nice; did you try a lower threshold?")
    lab.client(tokens["bob"]).vote(out.post_ids["alice"], 1)
    admin.record_verification(out.post_ids["alice"], "done", verified_pgr=0.18, se=0.02, seeds=3, per_seed=[0.16, 0.18, 0.2])
    admin.record_verification(out.post_ids["carol"], "done", verified_pgr=0.41, se=0.04, seeds=3, per_seed=[0.37, 0.41, 0.45])
    out.flag_ids["severe"] = admin.add_flag(
        "heldout_gap", "severe", "bob's claimed PGR is far above every re-run", evidence={"claimed": 0.35, "verified": 0.05},
        agent="bob", post_id=out.post_ids["bob"]).id
    out.flag_ids["warning"] = admin.add_flag(
        "transcript_scan", "warning", "carol read a file named labels", evidence={"step": 3, "command": "cat labels.txt"},
        agent="carol").id
    now = time.time()
    for i, name in enumerate(tokens):
        write_transcript(run_dir / "transcripts" / f"{name}.jsonl",
                         transcript_records(name, 60 + 10 * i, now - 3600 + i * 60), torn=(name == "bob"))
    (run_dir / "workspaces" / "alice").mkdir(parents=True, exist_ok=True)
    (run_dir / "workspaces" / "alice" / "NOTEBOOK.md").write_text("# Notebook\n\n- lr 0.05 works better\n")
    # The shape aarlab.team writes (RunState / AgentState).
    (run_dir / "state.json").write_text(json.dumps({
        "run_id": "dash-test", "created_at": now - 3600, "status": "running", "reason": "", "task": lab.task_name,
        "elapsed_s": 3600.0, "sessions": 1,
        "agents": [{"name": name, "model": "scripted:demo", "direction": name + "-direction",
                    "direction_title": name.capitalize() + "'s direction", "direction_text": d,
                    "status": "running" if name != "bob" else "failed",
                    "reason": "" if name != "bob" else "sandbox died: exit 137", "restarts": 0}
                   for name, d in directions.items()]}))
    (run_dir / "config.yaml").write_text(
        "name: dash-test\nteam:\n  agents: 3\n  model: scripted:demo\n"
        "budget:\n  total:\n    usd: 20\n    hours: 8\n  submissions_per_run: 30\n")
    # state.json says running: so must the lock, or the dashboard (rightly) calls the run's process gone.
    out.lock = hold_session_lock(run_dir)
    return out


