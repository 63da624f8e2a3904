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
        elif phase in ("submit", "resubmit") and not is_error:
            n = len(call.arguments["path"])
            content = (f"submission #12 ({n} seeds) on the public test part: accuracy 0.800, PGR 0.450 ± 0.040 "
                       f"(seed SE), test-sampling SE 0.050 (coarse: accuracy on a grid of 0.025). Submissions left: "
                       f"29 this run, 14 this hour.")
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
    # All three seeds in one submission, and the result claims exactly what the lab replied to it.
    assert [p for p in phases if "submit" in p] == ["demo-submit", "demo-combo-submit"]
    submit = next(c for m in messages if m.role == "assistant" for c in m.tool_calls if c.id.startswith("demo-submit."))
    assert submit.arguments["path"] == [f"out/variant_ada_s{s}.json" for s in range(3)]
    post = next(c for m in messages if m.role == "assistant" for c in m.tool_calls if c.id.startswith("demo-post."))
    assert post.arguments["kind"] == "result" and post.arguments["submission_id"] == 12
    assert post.arguments["metrics"] == {"pgr": 0.45, "pgr_se": 0.04, "seeds": 3, "test_se": 0.05}
    assert "0.45 ± 0.04 (n=3)" in post.arguments["title"]
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
    messages = _play(DemoResearcher(light=True), {"submit": interrupted,
                                                  "publish": ("published snapshot s1", False)})
    phases = [p for _, p in _calls(messages)]
    assert phases.count("demo-submit") == 1 and phases.count("demo-resubmit") == 1  # a new call replaces it
    post = next(c for m in messages if m.role == "assistant" for c in m.tool_calls if c.id.startswith("demo-post."))
    assert post.arguments["kind"] == "result" and post.arguments["metrics"]["seeds"] == 3


def test_a_lost_seed_run_is_replaced_by_one_more_seed():
    failed = ("exit code 1: Traceback ...", True)
    messages = _play(DemoResearcher(light=True), {"run-1": failed, "publish": ("published snapshot s1", False)})
    submit = next(c for m in messages if m.role == "assistant" for c in m.tool_calls if c.id.startswith("demo-submit."))
    assert submit.arguments["path"] == [f"out/variant_ada_s{s}.json" for s in (0, 2, 3)]
