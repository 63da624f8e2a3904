"""Each researcher's starting workspace: the known methods as examples, a README of its world, its notebook.

What an agent finds in ``/workspace`` on its first step:

- ``README.md`` — where things are (the task's public files at ``/task``, read-only), the method contract the
  lab re-runs, the tools that talk to the lab, the rules (submissions are limited and probing is detected);
- ``baselines/`` — the known methods' source code (``aarlab.w2s.methods``), runnable as they are with
  ``python -m <name>`` from that directory, to copy and change;
- ``NOTEBOOK.md`` — its own notes, kept across context compactions;
- ``task/`` — a copy of the task's public files, only for backends that cannot mount ``/task`` (``process``).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from aarlab.team._directions import Direction

AGENT_NAMES = (
    "ada", "babbage", "curie", "darwin", "euler", "faraday", "gauss", "hopper", "noether",
    "pascal", "raman", "shannon", "turing", "volta", "wiener", "yalow",
)  # fmt: skip


def agent_names(n: int) -> list[str]:
    """Short distinct names for ``n`` researchers (their forum handles and transcript file names)."""
    return [AGENT_NAMES[i] if i < len(AGENT_NAMES) else f"agent{i + 1}" for i in range(n)]


def method_sources() -> dict[str, str]:
    """The source of each known method that ships in ``aarlab.w2s.methods`` (file name -> text)."""
    out: dict[str, str] = {}
    try:
        root = resources.files("aarlab.w2s.methods")
    except ModuleNotFoundError:
        return out
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py") and entry.name != "__init__.py":
            out[entry.name] = entry.read_text(encoding="utf-8")
    return out


README = """\
# Your research environment

You are **{name}**, one of {team_size} researchers of a team working on weak-to-strong generalization in this lab.
Your direction: **{direction_title}** (`{direction_name}`; see the first message of your conversation for the full brief).

## Where things are
- `{task_dir}/` (read-only): the task's public files.
  - `task.json`: the task — dataset, label space, the weak and strong models, sizes, fixed baselines
    (weak accuracy, ceiling accuracy, each mean ± SE over seeds).
  - `train_unlabel.jsonl`: inputs with the weak teacher's soft labels (`weak_soft_label`).
  - `test.jsonl`: the test inputs (no labels). Predictions are a JSON list of label indices in its order.
- `/workspace` (here, read-write): your files. Publish a directory of it as a snapshot to share code.
- `baselines/`: the lab's known methods ({methods}). Each is a method in the contract below;
  run one with `cd baselines && python -m vanilla --data-dir {task_dir} --out ../preds.json --seed 0`.
  Copy one into a directory of your own and change it — that is how most methods start.
- `NOTEBOOK.md`: your notebook. Keep what you tried, what you found and what is next; it survives the
  summarising of long conversations, your memory does not.

## The method contract (what the lab re-runs)
`python -m <entry_point> --data-dir D --out predictions.json --seed S`, run from your snapshot's root. `D`
holds `task.json`, `train_unlabel.jsonl` and `test.jsonl`. A method must be deterministic for a given seed.
The lab re-runs every result you post on a **held-out** split (different data, fresh weak labels) and puts
the verified PGR next to your claim on the leaderboard. Claims that do not re-run do not count.

## The lab
- `submit_predictions(path)`: scores predictions on the *public* part of the test set (accuracy and PGR,
  2 decimals). Submissions are limited per run and per hour: submit to measure, not to search.
- `forum_read`, `forum_post`, `forum_reply`, `forum_search`: the team's forum. A `result` post names a
  snapshot, an entry point and metrics `{{"pgr", "pgr_se", "seeds"}}` over at least {min_seeds} seeds.
- `snapshot_publish(message, path)` / `snapshot_fetch(id)`: the code store; build on others' snapshots.
- `leaderboard`: baselines and every result with claimed and verified PGR.

PGR = (transfer accuracy − weak accuracy) / (ceiling accuracy − weak accuracy).

## Rules
Use only the task's weak and strong models and the data in `{task_dir}`. Do not try to obtain labels by any
other route (the network is closed; probing the scorer with near-duplicate submissions, predicting a constant
or the majority class, and labelling data by hand are detected and flagged). Report negative results too.
"""

NOTEBOOK = """\
# {name}'s notebook

Direction: {direction_title}

## Plan

## Results (PGR ± SE, seeds, snapshot)

## Next
"""


def seed_workspace(workspace: Path, *, name: str, direction: Direction, public_task_dir: Path | None,
                   task_dir_in_sandbox: str = "/task", min_seeds: int = 3, team_size: int = 1) -> None:
    """Fill a new agent's workspace (its directory must not hold anything the agent wrote yet).

    ``public_task_dir`` is copied into ``workspace/task`` when given (for backends without mounts).
    """
    workspace.mkdir(parents=True, exist_ok=True)
    sources = method_sources()
    baselines = workspace / "baselines"
    baselines.mkdir(exist_ok=True)
    for filename, text in sources.items():
        (baselines / filename).write_text(text, encoding="utf-8")
    methods = ", ".join(Path(f).stem for f in sources) or "none shipped in this install"
    (workspace / "README.md").write_text(
        README.format(name=name, team_size=team_size, direction_title=direction.title, direction_name=direction.name, task_dir=task_dir_in_sandbox,
                      methods=methods, min_seeds=min_seeds),
        encoding="utf-8",
    )
    (workspace / "NOTEBOOK.md").write_text(NOTEBOOK.format(name=name, direction_title=direction.title),
                                           encoding="utf-8")
    if public_task_dir is not None:
        shutil.copytree(public_task_dir, workspace / "task", dirs_exist_ok=True)
