"""The demo researcher decides from the conversation alone: resumable, and never repeats an interrupted call."""

from __future__ import annotations

from aarlab.llm import Message, ToolCall, ToolSpec
from aarlab.team import DemoResearcher

TOOLS = [ToolSpec(name=n, description="", parameters={}) for n in
         ("bash", "write_file", "edit_file", "submit_predictions", "snapshot_publish", "snapshot_fetch",
          "forum_post", "forum_read", "forum_reply", "leaderboard", "finish")]
README = ("# Your research environment\n\nYou are **ada**, one of 3 researchers of a team.\n"
          "Your direction: **Distillation** (`distillation`; see the first message)\nTASK_DIR=/task\n")


def _play(demo: DemoResearcher, outcomes: dict[str, tuple[str, bool]], limit: int = 60) -> list[Message]:
    """Run the demo against canned tool results (``outcomes[phase] = (content, is_error)``)."""
    messages = [Message(role="system", content="sys"), Message(role="user", content="go")]
    for _ in range(limit):
        step = demo(messages, TOOLS)
        if isinstance(step, str):
            break
        call = ToolCall(**step["tool_calls"][0])
        messages.append(Message(role="assistant", tool_calls=[call]))
        phase = call.id.split(".")[0].removeprefix("demo-")
        content, is_error = outcomes.get(phase, ("ok", False))
        if phase == "look":
            content = README
        elif phase.startswith("submit-") and (phase, True) not in [(k, v[1]) for k, v in outcomes.items()]:
            content = f"submission #{len(messages)} scored on the public test part: accuracy 0.80, PGR 0.{len(messages) % 9}5."
        messages.append(Message(role="tool", tool_call_id=call.id, content=content, is_error=is_error))
    return messages


def _calls(messages):
    return [(c.name, c.id.split(".")[0]) for m in messages if m.role == "assistant" for c in m.tool_calls]


def test_a_full_trajectory_runs_seeds_submits_posts_and_builds_on_another_agent():
    other = ("1 new post(s):\n\n#7 [result] 'curie: bow_nb' by curie tags=x snapshot=abc123def456 "
             "entry_point=variant_curie metrics={}")
    messages = _play(DemoResearcher(light=True), {"publish": ("published snapshot s1 (2 files)", False),
                                                  "wait-read-0": (other, False)})
    calls = _calls(messages)
    phases = [p for _, p in calls]
    assert phases[:2] == ["demo-look", "demo-read"]
    assert [p for p in phases if p.startswith("demo-submit")] == ["demo-submit-0", "demo-submit-1", "demo-submit-2"]
    post = next(c for m in messages if m.role == "assistant" for c in m.tool_calls if c.id.startswith("demo-post."))
    assert post.arguments["kind"] == "result" and post.arguments["metrics"]["seeds"] == 3
    assert post.arguments["snapshot_id"] == "s1" and post.arguments["entry_point"] == "variant_ada"
    fetch = next(c for m in messages if m.role == "assistant" for c in m.tool_calls if c.name == "snapshot_fetch")
    assert fetch.arguments["snapshot_id"] == "abc123def456"
    assert ("forum_reply", "demo-reply") in calls and calls[-1] == ("finish", "demo-finish")


def test_resuming_mid_conversation_continues_with_the_next_step():
    demo = DemoResearcher(light=True)
    messages = _play(demo, {"publish": ("published snapshot s1", False)}, limit=6)
    # A new process (a new demo object) given the same conversation asks for exactly what the first would.
    assert DemoResearcher(light=True)(messages, TOOLS) == demo(messages, TOOLS)


def test_an_interrupted_submission_is_never_sent_again():
    interrupted = ("This tool call was interrupted by a restart of your harness; it was not run again.", True)
    messages = _play(DemoResearcher(light=True), {"submit-1": interrupted,
                                                  "publish": ("published snapshot s1", False)})
    phases = [p for _, p in _calls(messages)]
    assert phases.count("demo-submit-1") == 1
    assert "demo-run-3" in phases and "demo-submit-3" in phases  # one more seed keeps three scored seeds
    post = next(c for m in messages if m.role == "assistant" for c in m.tool_calls if c.id.startswith("demo-post."))
    assert post.arguments["kind"] == "result" and post.arguments["metrics"]["seeds"] == 3
