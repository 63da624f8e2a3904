"""Reading a run directory's own files (config, state, notebooks, generalization results) tolerantly.

The run may still be running, stopped or crashed, so every reader accepts a missing or half-written file
and returns what it can; nothing here writes into the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aarlab.rundir import lock_holder as rundir_lock_holder
from aarlab.rundir import read_state_file, session_running


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
    return {} if run_dir is None else read_state_file(Path(run_dir))


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


def generalization_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of one ``aarlab generalize`` result file.

    ``aarlab generalize --out DIR`` writes ``DIR/generalization.json``, a list of rows (``method, dataset,
    strong_model, weak_acc, ceiling_acc, transfer_acc, transfer_acc_se, pgr, pgr_se, seeds, error``); a dict
    with ``rows`` (or ``results``) and an optional ``method`` label is accepted too. Unknown shapes are
    skipped rather than guessed at.
    """
    data = read_json(path)
    if isinstance(data, dict):
        label = data.get("method") or data.get("snapshot") or data.get("snapshot_id") or path.stem
        items = data.get("rows") or data.get("results") or []
    elif isinstance(data, list):
        label, items = path.stem, data
    else:
        return []
    rows = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and "dataset" in item:
            rows.append({**item, "method": str(item.get("method") or label), "source": path.name})
    return rows


def generalization_files(run_dir: Path | None) -> list[Path]:
    """Generalization results of a run: ``generalization*.json`` at its top, and the JSON files in its
    ``generalization/`` and ``generalize/`` folders (where ``aarlab generalize --out`` may have put them)."""
    if run_dir is None:
        return []
    run_dir = Path(run_dir)
    found = sorted(run_dir.glob("generalization*.json"))
    for folder in ("generalization", "generalize"):
        found += sorted((run_dir / folder).glob("*.json"))
    return found


def read_generalization(run_dir: Path | None) -> list[dict[str, Any]]:
    """All generalization rows of a run (see ``generalization_rows``), in file order."""
    return [row for path in generalization_files(run_dir) for row in generalization_rows(path)]


def generalization_plots(run_dir: Path | None) -> list[Path]:
    """PNG plots written beside the generalization tables (``generalization*.png``)."""
    if run_dir is None:
        return []
    run_dir = Path(run_dir)
    found = sorted(run_dir.glob("generalization*.png"))
    for folder in ("generalization", "generalize"):
        found += sorted((run_dir / folder).glob("*.png"))
    return found


def sandbox_backend(config: dict[str, Any], state: dict[str, Any] | None = None) -> str | None:
    """The run's sandbox backend: ``state.json`` when it records one, else ``config.yaml``'s
    ``sandbox.backend`` (``bwrap``, the config's default, when the section is there without it); None when the
    run has no config to tell."""
    for source, keys in ((state or {}, ("sandbox_backend", "sandbox.backend", "backend")),
                         (config, ("sandbox.backend",))):
        value = first(source, *keys)
        if isinstance(value, str) and value:
            return value
    if config:
        return "bwrap"  # aarlab.config.SandboxConfig's default
    return None


def is_unisolated(backend: str | None) -> bool:
    """The ``process`` backend runs the agents' commands as plain processes: nothing isolates them."""
    return backend == "process"


def session_alive(run_dir: Path | None) -> bool | None:
    """Whether a team session holds ``RUN_DIR/.lock`` right now: True, False, or None with no run dir.

    The same check as ``aarlab status`` (``aarlab.rundir.session_running``), which never creates the lock
    file: the dashboard and the report must not write into a run.
    """
    return None if run_dir is None else session_running(Path(run_dir))


def lock_holder(run_dir: Path | None) -> str:
    """What the session wrote into its ``.lock`` (``pid N``), or ``""``."""
    return "" if run_dir is None else rundir_lock_holder(Path(run_dir))
