"""The researcher's system prompt (``prompts/system.md``) and the other texts the loop sends the model."""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template
from typing import Any

from aarlab.agent._config import AgentConfig

FIRST_MESSAGE = (
    "Begin your research. Start by reading your notebook ({notebook}), the README in your workspace if there "
    "is one, the task's files and the forum; then plan, and work step by step with your tools."
)
IDLE_NUDGE = (
    "You replied without calling a tool. Continue your research with your tools, or call `finish` if you are "
    "done ({left} more replies without a tool call end your run)."
)


@cache
def _template(name: str) -> Template:
    return Template(resources.files("aarlab.agent.prompts").joinpath(name).read_text(encoding="utf-8"))


def _field(info: Any, name: str, default: Any = None) -> Any:
    if info is None:
        return default
    if isinstance(info, dict):
        return info.get(name, default)
    return getattr(info, name, default)


def _stat(stat: Any) -> str:
    if stat is None:
        return "unknown"
    mean, se, n = _field(stat, "mean"), _field(stat, "se", 0.0), _field(stat, "n", 1)
    return f"{mean:.3f} ± {se:.3f} (n={n} seeds)"


JOBS_LINE = (
    "\n- Background jobs: `job_start` runs a command in your sandbox and returns at once (its output goes to "
    "`.jobs/<name>.log`); `job_list`, `job_output`, `job_wait` and `job_kill` follow it. You have {slots} job "
    "slot(s): that many jobs run at once (each gets its own GPU when you have GPUs), and starting more is "
    "refused. Run seeds and variants side by side and keep reading and writing while they run; their CPU and "
    "GPU time counts against your budget."
)


def render_system_prompt(config: AgentConfig, task_info: Any = None, *, budget: str = "no limits",
                         sandbox: str = "isolated", consult: bool = False, job_slots: int | None = None) -> str:
    """The system prompt for one agent.

    ``task_info`` is the lab's ``TaskSummary`` (or a ``TaskInfo``, or a dict of the same fields; None when the
    agent has no lab); ``budget`` is the one-line budget description, ``sandbox`` names the backend;
    ``job_slots``: the sandbox's background-job slots (None: it runs no jobs, and the prompt says nothing).
    """
    fixed = _field(task_info, "fixed")
    sizes = _field(task_info, "sizes") or {}
    fields = {
        "name": config.name,
        "task_name": _field(task_info, "name", config.task or "(no task)"),
        "task_description": _field(task_info, "description", "") or "",
        "dataset": _field(task_info, "dataset", "unknown"),
        "label_space": ", ".join(f"{i} = {label!r}" for i, label in enumerate(_field(task_info, "label_space") or []))
        or "see task.json",
        "input_fields": ", ".join(_field(task_info, "input_fields") or ["text"]),
        "weak_model": _field(task_info, "weak_model", "see task.json"),
        "strong_model": _field(task_info, "strong_model", "see task.json"),
        "sizes": ", ".join(f"{k} {v:,}" for k, v in sizes.items()) or "see task.json",
        "weak_acc": _stat(_field(fixed, "weak_acc")),
        "ceiling_acc": _stat(_field(fixed, "ceiling_acc")),
        "task_dir": config.task_dir,
        "baselines_dir": config.baselines_dir,
        "workspace_dir": config.workspace_dir,
        "notebook": config.notebook,
        "direction": config.direction.strip() or "Open: choose the most promising direction yourself.",
        "sandbox": sandbox,
        "tool_timeout": f"{config.tool_timeout_s:.0f} s",
        "budget": budget,
        "min_seeds": config.min_seeds,
        "jobs_line": JOBS_LINE.format(slots=job_slots) if job_slots else "",
        "consult_line": (
            "\n- `consult` asks a stronger advisor model for research advice (it sees only what you send it)."
            if consult else ""
        ),
    }
    return _template("system.md").substitute(fields).strip() + "\n"


def first_message(config: AgentConfig) -> str:
    return FIRST_MESSAGE.format(notebook=config.notebook)
