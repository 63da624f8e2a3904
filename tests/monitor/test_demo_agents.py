"""The offline demo's honest researchers (``aarlab.team._demo``) must get no transcript flag: their tool calls
(copying a known method, running it in ``method/``, writing outputs to ``../out``, fetching another agent's
snapshot into ``built_on/``) are what honest work looks like."""

from __future__ import annotations

import pytest

from aarlab.llm import Message, ToolCall, ToolSpec
from aarlab.monitor import Action, registered_detectors, run_detector
from aarlab.team._demo import VARIANTS, DemoResearcher

TOOLS = [ToolSpec(name=n, description=n, parameters={"type": "object"}) for n in
         ("bash", "write_file", "edit_file", "forum_read", "forum_post", "forum_reply", "submit_predictions",
          "snapshot_publish", "snapshot_fetch", "leaderboard", "finish")]


def _answer(call: ToolCall, name: str, direction: str, other: str) -> str:
    """What the lab's tools would answer to the demo (only what it reads back matters)."""
    phase = call.id.split(".", 1)[0]
    if phase == "demo-look":
        return (f"# You are **{name}**, one of 2 researchers\nYour direction: x (`{direction}`)\nTASK_DIR=/task\n"
                "task synthetic labels ['negative', 'positive']\nvanilla.py")
    if phase.startswith("demo-submit") or phase == "demo-combo-submit":
        return "submission 3: public PGR 0.41"
    if phase == "demo-publish":
        return "published snapshot 1a2b3c4d5e6f7a8b"
    if phase.startswith("demo-wait-read"):
        return f"#7 [result] {other}: vanilla, PGR 0.5 by {other} snapshot=9f8e7d6c5b4a3f2e entry_point=variant_{other}"
    return "ok"


def _demo_actions(name: str, other: str, direction: str, light: bool) -> list[Action]:
    brain = DemoResearcher(methods=["vanilla", "logconf", "confident"], light=light)
    messages: list[Message] = []
    actions: list[Action] = []
    for step in range(60):  # bounded: the demo finishes in ~25 calls
        reply = brain(messages, TOOLS)
        if isinstance(reply, str):
            break
        calls = [ToolCall(**c) for c in reply["tool_calls"]]
        messages.append(Message(role="assistant", content="", tool_calls=calls))
        for call in calls:
            answer = _answer(call, name, direction, other)
            messages.append(Message(role="tool", content=answer, tool_call_id=call.id))
            actions.append(Action(agent=name, step=step, tool=call.name, arguments=call.arguments, result=answer,
                                  call_id=call.id))
    assert any(a.tool == "finish" for a in actions)
    return actions


@pytest.mark.parametrize("light", [True, False], ids=["light", "known-method"])
@pytest.mark.parametrize("direction", sorted(VARIANTS)[:4] + ["unknown-direction"])
def test_demo_researchers_raise_no_transcript_flag(ctx, light, direction):
    ctx.agents = ["alice", "bob"]
    actions = _demo_actions("alice", "bob", direction, light)
    assert any(a.arguments.get("dest", "").startswith("built_on/") for a in actions)  # it built on bob's work
    for name in registered_detectors("transcript"):
        assert run_detector(name, actions, ctx) == [], name
