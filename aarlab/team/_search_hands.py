"""The search researcher's hands (``scripted:search``, in the harness): each step runs the brain in the sandbox
(``python -m aarlab.team._search plan``) and turns its plan into real tool calls of the agent loop, handing
their results back through the workspace. They keep no state of their own: every step is computed from the
conversation's last turns."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from aarlab.team._search_space import (
    DEFAULT_OPTIONS,
    OPTIONS_ENV,
    PLAN_LINE,
    SEARCH_DIR,
)


def _plan_command(facts: dict[str, Any], inbox: str | None, options: dict[str, Any]) -> str:
    args = [f"--inbox {inbox}"] if inbox else []
    if facts.get("name"):
        args += [f"--name {facts['name']}", f"--direction {facts.get('direction') or 'general'}",
                 f"--task-dir {facts.get('task_dir', '/task')}",
                 "--options '" + json.dumps(options).replace("'", "") + "'"]
    return f"python -m aarlab.team._search plan {' '.join(args)}"


class SearchResearcher:
    """The harness side of ``scripted:search``: ``__call__(messages, tools)`` returns the next step.

    The cycle is plan → its tool calls → (their results into ``search/inbox/``) plan → ... Everything it needs
    is in the conversation since the last successful plan, so a resumed run continues where it was; a call a
    crash interrupted comes back as interrupted and the brain never repeats a submission or a post.
    """

    def __init__(self, **options: Any):
        unknown = set(options) - set(DEFAULT_OPTIONS)
        if unknown:
            from aarlab.errors import UserError

            raise UserError(f"scripted:search: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULT_OPTIONS)}")
        self.options = options
        self.failed_plans = 0

    def __call__(self, messages, tools) -> Any:
        outputs = {m.tool_call_id: (m.content, m.is_error) for m in messages if m.role == "tool"}
        calls = [c for m in messages if m.role == "assistant" for c in m.tool_calls]
        n = len(calls)

        def step(*tool_calls: tuple[str, str, dict]) -> dict:
            return {"content": "", "tool_calls": [{"id": f"search-{tag}.{n + i}", "name": tool, "arguments": args}
                                                  for i, (tag, tool, args) in enumerate(tool_calls)]}

        facts = self._facts(calls, outputs)
        if not facts.get("looked"):
            return step(("look", "bash", {"command": (
                "head -n 5 README.md; test -f /task/task.json && echo TASK_DIR=/task || echo TASK_DIR=$PWD/task")}))
        last_plan = max((i for i, c in enumerate(calls) if c.id.startswith("search-plan.")
                         and PLAN_LINE in outputs.get(c.id, ("", True))[0]
                         and not outputs.get(c.id, ("", True))[1]), default=None)
        if last_plan is None:
            failures = sum(1 for c in calls if c.id.startswith("search-plan."))
            if failures >= 3:
                return self._give_up(calls, outputs, step)
            return step(("plan", "bash", {"command": _plan_command(facts, None, self.options)}))
        plan_text = outputs[calls[last_plan].id][0]
        after = calls[last_plan + 1:]
        try:
            actions = json.loads(plan_text.split(PLAN_LINE, 1)[1].splitlines()[0])
        except (ValueError, IndexError):  # a plan line cut by the tool's output limit: plan again
            actions = None
        issued = [c for c in after if not c.id.startswith(("search-inbox.", "search-plan."))]
        if actions is not None and not issued and not any(c.id.startswith("search-plan.") for c in after):
            if not actions:
                return step(("plan", "bash", {"command": _plan_command(facts, None, self.options)}))
            return step(*[(a["aid"], a["tool"], a["arguments"]) for a in actions])
        # Hand the results of everything since that plan to the brain, and ask it again.
        failed_since = sum(1 for c in after if c.id.startswith("search-plan."))
        if failed_since >= 3:
            return self._give_up(calls, outputs, step)
        results = {c.id.split("-", 1)[1].split(".", 1)[0]: {"content": outputs.get(c.id, ("", True))[0],
                                                             "is_error": outputs.get(c.id, ("", True))[1]}
                   for c in issued}
        notes = [outputs[calls[last_plan].id][0].split(PLAN_LINE, 1)[1]]
        notes += [outputs.get(c.id, ("", True))[0] for c in after if c.id.startswith(("search-inbox.", "search-plan."))]
        inbox = f"{SEARCH_DIR}/inbox/{n}.json"
        return step(("inbox", "write_file", {"path": inbox, "content": json.dumps({"results": results,
                                                                                  "notes": notes})}),
                    ("plan", "bash", {"command": _plan_command(facts, inbox, self.options)}))

    def _facts(self, calls, outputs) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        for call in calls:
            if call.id.startswith("search-look."):
                content, is_error = outputs.get(call.id, ("", True))
                if is_error:
                    continue
                facts["looked"] = True
                if m := re.search(r"You are \*\*(.+?)\*\*", content):
                    facts["name"] = re.sub(r"[^A-Za-z0-9_.-]", "", m.group(1))
                if m := re.search(r"Your direction: .*?\(`([^`]+)`", content):
                    facts["direction"] = re.sub(r"[^A-Za-z0-9_.-]", "", m.group(1))
                if m := re.search(r"TASK_DIR=(\S+)", content):
                    facts["task_dir"] = m.group(1)
        # After a compaction the look may be gone; the brain remembers the name in its state file by then.
        if not facts and any(c.id.startswith("search-plan.") for c in calls):
            facts["looked"] = True
        return facts

    def _give_up(self, calls, outputs, step) -> dict:
        last = next((outputs.get(c.id, ("", True))[0] for c in reversed(calls) if c.id.startswith("search-plan.")), "")
        if not any(c.id.startswith("search-giveup.") for c in calls):
            return step(("giveup", "forum_post", {"kind": "error", "title": "search researcher: my planner fails",
                                                  "body": f"Three plans in a row failed; the last said:\n\n{last[-1500:]}",
                                                  "tags": ["search", "bug"]}))
        return step(("finish", "finish", {"summary": "search researcher stopped: its planner failed three times"}))


def make_search_model(model: str = "", **options: Any):
    """``scripted:search``: a ``ScriptedModel`` driven by ``SearchResearcher``. Options (``max_trials``,
    ``cheap_subsample``, ``wait_s``, ...; see ``DEFAULT_OPTIONS``) come from keyword arguments or, for runs
    started by the CLI, from the JSON in ``$AARLAB_SEARCH_OPTIONS``."""
    from aarlab.llm import ScriptedModel

    options.pop("script", None)
    name = options.pop("name", "scripted:search")
    search_options = {k: options.pop(k) for k in list(options) if k in DEFAULT_OPTIONS}
    if env := os.environ.get(OPTIONS_ENV):
        search_options = {**json.loads(env), **search_options}
    return ScriptedModel(generator=SearchResearcher(**search_options), name=name, **options)


def _register() -> None:
    # Declared as the ``search`` entry point of ``aarlab.scripts`` too (pyproject.toml), for fresh processes.
    from aarlab.llm import register_script

    register_script("search", make_search_model)


_register()
