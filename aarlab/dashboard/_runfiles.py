"""Reading a run directory's own files (config, state, notebooks, generalization results) tolerantly.

The run may still be running, stopped or crashed, so every reader accepts a missing or half-written file
and returns what it can; nothing here writes into the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_config(run_dir: Path | None) -> dict[str, Any]:
    """``config.yaml`` as a plain dict (empty when missing or unreadable)."""
    if run_dir is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_state(run_dir: Path | None) -> dict[str, Any]:
    """``state.json`` written atomically by the team runner (agents, statuses, spend)."""
    if run_dir is None:
        return {}
    data = read_json(Path(run_dir) / "state.json")
    return data if isinstance(data, dict) else {}


def state_agents(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-agent entries of ``state.json`` keyed by name, whether stored as a dict or a list."""
    agents = state.get("agents")
    if isinstance(agents, dict):
        return {str(k): v for k, v in agents.items() if isinstance(v, dict)}
    if isinstance(agents, list):
        return {str(a.get("name")): a for a in agents if isinstance(a, dict) and a.get("name")}
    return {}


def dig(data: Any, *keys: str, default: Any = None) -> Any:
    """``data[k1][k2]...`` or ``default`` when any level is missing."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def first(data: dict[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of ``keys`` present (not None) in ``data`` — state files name the same thing differently."""
    for key in keys:
        value = dig(data, *key.split("."))
        if value is not None:
            return value
    return default


def read_notebook(run_dir: Path | None, agent: str, limit: int = 200_000) -> str | None:
    """The agent's ``workspaces/<agent>/NOTEBOOK.md`` (None if it has none)."""
    if run_dir is None:
        return None
    path = Path(run_dir) / "workspaces" / agent / "NOTEBOOK.md"
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return None


def read_generalization(run_dir: Path | None) -> list[dict[str, Any]]:
    """Generalization results in ``<run>/generalize/*.json`` as table rows.

    Each file is one ``aarlab generalize`` result: a dict with ``method``/``snapshot`` and ``rows``
    (``dataset, weak_acc, ceiling_acc, transfer_acc, pgr, pgr_se, seeds``), or a bare list of such rows.
    Unknown shapes are skipped rather than guessed at.
    """
    if run_dir is None:
        return []
    rows: list[dict[str, Any]] = []
    for path in sorted((Path(run_dir) / "generalize").glob("*.json")):
        data = read_json(path)
        if isinstance(data, dict):
            label = data.get("method") or data.get("snapshot") or data.get("snapshot_id") or path.stem
            items = data.get("rows") or data.get("results") or []
            plot = data.get("plot")
        elif isinstance(data, list):
            label, items, plot = path.stem, data, None
        else:
            continue
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "dataset" in item:
                row = {"method": str(item.get("method") or label), "source": path.name, **item}
                if plot:
                    row["plot"] = plot
                rows.append(row)
    return rows
