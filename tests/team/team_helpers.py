"""Helpers for the team tests: config files, and running the CLI in or out of process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
AARLAB = [sys.executable, "-m", "aarlab.cli"]


def tiny_config(**sections) -> dict:
    """A run on a tiny synthetic task with the light demo researcher, no verifier or monitors."""
    config = {
        "task": {"synthetic": {"n_unlabel": 60, "n_test": 60}},
        "team": {"agents": 3, "model": "scripted:demo-light"},
        "verification": {"enabled": False},
        "monitors": {"enabled": False},
        "report": False,
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def cli(*args: str, capsys=None) -> tuple[int, str, str]:
    """Run ``aarlab ARGS`` in this process (as the console entry point does): (exit code, stdout, stderr)."""
    from aarlab.cli import main

    old = sys.argv
    sys.argv = ["aarlab", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    out, err = capsys.readouterr() if capsys is not None else ("", "")
    return code, out, err


def cli_process(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*AARLAB, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, **kw)


def transcript(run_dir: Path, agent: str) -> list[dict]:
    path = run_dir / "transcripts" / f"{agent}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def tool_outputs(records: list[dict]) -> list[str]:
    return [m["content"] for r in records if r["type"] == "turn" for m in r.get("tool_results", [])]
