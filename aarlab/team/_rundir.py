"""Making a run directory: the prepared task, the workspaces, the config and the state, all or nothing.

``create_run`` checks the whole config first (``RunConfig.check``), prepares the task (or reuses a prepared
task cached under ``aarlab.paths.cache_dir()/prepared/<key>``, keyed by the task's settings), and only then
creates the run directory. Until the first session has registered the task and the agents on the lab server
the directory holds a ``.creating`` marker; any failure removes the directory again, so a bad config or a
failed preparation leaves nothing behind. (Only a ``kill -9`` during those seconds can leave a marked
directory, which ``aarlab resume`` refuses with a clear message.)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from aarlab.config import RunConfig
from aarlab.errors import UserError
from aarlab.paths import cache_dir
from aarlab.team._directions import assign_directions
from aarlab.team._state import AgentState, RunState
from aarlab.team._workspace import agent_names, seed_workspace

CREATING_MARKER = ".creating"
ADMIN_TOKEN_FILE = "admin_token"
VIEWER_TOKEN_FILE = "viewer_token"


def ensure_viewer_token(run_dir: Path) -> str:
    """``RUN_DIR/viewer_token`` (mode 0600): the read-only token of the run's dashboard, made when missing.

    Runs made before viewer tokens existed get one on their next session.
    """
    path = Path(run_dir) / VIEWER_TOKEN_FILE
    if path.is_file():
        token = path.read_text().strip()
        if len(token) >= 16:
            return token
    token = secrets.token_urlsafe(24)
    tmp = path.with_name(f".{VIEWER_TOKEN_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)
    return token


def dashboard_url(url: str, viewer_token: str) -> str:
    """The dashboard's address with the viewer token (the page moves it into a cookie at once)."""
    return f"{url.rstrip('/')}/?token={viewer_token}"


def default_run_dir(config: RunConfig, root: Path = Path("runs")) -> Path:
    """``runs/<UTC time>-<name>``: sortable, readable, and new for every run."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in (config.name or "team"))[:40]
    path = root / f"{stamp}-{name}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{name}-{n}"
    return path


def task_cache_key(config: RunConfig) -> str:
    """What identifies a prepared task: its full preparation settings (hashed)."""
    if config.task.synthetic is not None:
        payload = {"synthetic": config.task.synthetic.model_dump()}
    else:
        from aarlab.w2s.prepare import DEFAULT_STRONG, PREPARE_VERSION, numerics

        payload = {"prepare": config.task.prepare_kwargs, "version": PREPARE_VERSION,
                   "precision": numerics(config.task.strong_model or DEFAULT_STRONG)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepared_task(config: RunConfig, log: Callable[[str], None] = lambda _: None) -> Path:
    """A prepared task dir for the config: its own ``task.dir``, or one made once and cached.

    Preparation writes into a temporary sibling and renames it into place, so the cache never holds half a
    task even if it is interrupted.
    """
    if config.task.dir is not None:
        return config.resolve_path(config.task.dir)
    key = task_cache_key(config)
    target = cache_dir() / "prepared" / key
    if (target / "public" / "task.json").is_file():
        log(f"task: reusing the prepared task cached at {target}")
        return target
    tmp = target.with_name(f".{key}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        if config.task.synthetic is not None:
            from aarlab.w2s.synthetic import write_synthetic_task

            s = config.task.synthetic
            write_synthetic_task(tmp, n_unlabel=s.n_unlabel, n_test=s.n_test, seed=s.seed)
        else:
            task = config.task
            log(f"task: preparing {task.dataset} ({task.weak_model} → {task.strong_model}, {task.size} examples, "
                f"{task.seeds} seeds) once; later runs reuse it from {target}")
            from aarlab.w2s.prepare import prepare

            prepare(out=tmp, force=True, progress=True, log=log, **task.prepare_kwargs)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _copy_task(source: Path, dest: Path) -> None:
    # Hard links make the copy free where the cache and the run share a filesystem; a task dir's files are
    # never modified in place, so sharing them is safe.
    try:
        shutil.copytree(source, dest, copy_function=os.link)
    except OSError:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(source, dest)


def create_run(config: RunConfig, run_dir: Path, log: Callable[[str], None] = lambda _: None) -> RunState:
    """Check the config, prepare the task and write a new run directory (still marked as being created).

    Raises ``UserError`` (and leaves no directory) on any problem with the config, the task or the path.
    """
    config.check()
    # before anything slow: a direction that names no file is a mistake in the config
    directions = assign_directions(config.team.agents, config.team.directions, config.team.homogeneous,
                                   config.base_dir)
    run_dir = Path(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UserError(f"run directory {run_dir} already exists and is not empty (use `aarlab resume {run_dir}`)")
    from aarlab.w2s.taskdir import TaskDir

    source = prepared_task(config, log)
    TaskDir(source).check()
    models = config.agent_models()
    existed = run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        (run_dir / CREATING_MARKER).write_text(str(os.getpid()))
        for sub in ("transcripts", "workspaces", "snapshots", "report"):
            (run_dir / sub).mkdir()
        token_path = run_dir / ADMIN_TOKEN_FILE
        token_path.touch(mode=0o600)
        token_path.write_text(config.server.admin_token or os.environ.get("AARLAB_ADMIN_TOKEN")
                              or secrets.token_urlsafe(32))
        ensure_viewer_token(run_dir)
        saved = config.model_copy()
        (run_dir / "config.yaml").write_text(saved.to_yaml(), encoding="utf-8")
        _copy_task(source, run_dir / "task")
        mountless = config.cluster == "none" and config.sandbox.backend == "process"
        state = RunState(run_id=run_dir.name)
        for name, direction, model in zip(agent_names(config.team.agents), directions, models, strict=True):
            workspace = run_dir / "workspaces" / name
            seed_workspace(workspace, name=name, direction=direction,
                           public_task_dir=run_dir / "task" / "public" if mountless else None,
                           task_dir_in_sandbox=str(workspace / "task") if mountless else "/task",
                           min_seeds=config.server.min_result_seeds, team_size=config.team.agents)
            state.agents.append(AgentState(name=name, model=model, direction=direction.name,
                                           direction_title=direction.title, direction_text=direction.text))
        state.save(run_dir)
    except BaseException:
        _remove(run_dir, existed)
        raise
    return state


def _remove(run_dir: Path, keep_dir: bool) -> None:
    if keep_dir:
        for child in run_dir.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    else:
        shutil.rmtree(run_dir, ignore_errors=True)


def abandon_run(run_dir: Path) -> None:
    """Remove a run directory whose creation failed (it still carries the ``.creating`` marker)."""
    if (Path(run_dir) / CREATING_MARKER).exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def finish_creation(run_dir: Path) -> None:
    (Path(run_dir) / CREATING_MARKER).unlink(missing_ok=True)


def check_resumable(run_dir: Path) -> None:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    if (run_dir / CREATING_MARKER).exists():
        raise UserError(f"{run_dir} was interrupted while it was being created; remove it and start a new run")
    if not (run_dir / "state.json").is_file():
        raise UserError(f"{run_dir} is not an aarlab run directory (no state.json)")
