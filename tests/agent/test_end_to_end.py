"""End to end with the scripted provider: two agents in real bwrap sandboxes and a real lab server.

Bob publishes a snapshot and posts about it. Ada writes a method in the lab's contract, runs it on the task
mounted at /task, submits its predictions, publishes her code, posts a result naming the snapshot, reads
Bob's post (new since her last read), fetches his snapshot into her workspace and replies to him.

By default Ada's method is a tiny pure-Python one (word votes weighted by the weak labels: a real
weak-to-strong experiment that runs in a blink); the slow variant runs the lab's own
``aarlab.w2s.methods.vanilla`` (torch) instead.
"""

from __future__ import annotations

import re

import pytest

from aarlab.agent import Agent, AgentConfig, read_transcript
from aarlab.llm import get_model
from aarlab.server.testing import running_lab


class Conversation:
    """A scripted researcher whose next step may depend on what its tools returned (ids, scores)."""

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, messages):
        done = sum(1 for m in messages if m.role == "assistant")
        if done >= len(self.steps):
            return None
        tool_texts = [m.content for m in messages if m.role == "tool"]
        step = self.steps[done]
        return step(tool_texts) if callable(step) else step


def found(pattern, texts):
    for text in reversed(texts):
        if match := re.search(pattern, text):
            return match.group(1)
    raise AssertionError(f"{pattern!r} not in any tool result")


VANILLA = "from aarlab.w2s.methods.vanilla import main\n\nif __name__ == '__main__':\n    main()\n"
WORD_VOTES = '''"""Word votes: each word's score is the mean weak soft label of the examples it occurs in."""
import argparse, json, random
from collections import defaultdict

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir"); parser.add_argument("--out"); parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
random.seed(args.seed)
rows = [json.loads(line) for line in open(f"{args.data_dir}/train_unlabel.jsonl")]
votes, counts = defaultdict(float), defaultdict(int)
for row in random.sample(rows, int(0.9 * len(rows))):
    for word in set(row["text"].split()):
        votes[word] += row["weak_soft_label"][1]
        counts[word] += 1
test = [json.loads(line) for line in open(f"{args.data_dir}/test.jsonl")]
scores = [sum(votes[w] / counts[w] - 0.5 for w in row["text"].split() if counts[w]) for row in test]
json.dump([int(s > 0) for s in scores], open(args.out, "w"))
'''


@pytest.mark.parametrize("method", [pytest.param(WORD_VOTES, id="word-votes"),
                                    pytest.param(VANILLA, id="vanilla", marks=pytest.mark.slow)])
def test_two_agents_experiment_submit_post_read_and_fetch(tmp_path, make_sandbox, method):
    with running_lab(tmp_path / "lab", min_result_seeds=1) as lab:
        admin = lab.client()
        bob_token, ada_token = admin.create_agent("bob").token, admin.create_agent("ada").token

        bob_steps = [
            {"tool": "write_file", "arguments": {"path": "idea/README.md", "content": "Bob's confidence idea\n"}},
            {"tool": "snapshot_publish", "arguments": {"message": "confidence thresholding", "path": "idea"}},
            lambda texts: {"tool": "forum_post", "arguments": {
                "kind": "insight", "title": "Thresholding weak labels at 0.8 looks promising",
                "body": "Early sign; code in the snapshot.", "tags": ["confidence"],
                "snapshot_id": found(r"published snapshot (\S+)", texts)}},
            {"tool": "finish", "arguments": {"summary": "posted an idea"}},
        ]
        with lab.client(bob_token) as bob_client:
            bob = Agent(AgentConfig(name="bob", min_seeds=1), transcript=tmp_path / "bob.jsonl",
                        sandbox=make_sandbox("bob", "bwrap", task=lab.task_dir), client=bob_client,
                        model=get_model("scripted", generator=Conversation(bob_steps)))
            assert bob.run().reason == "done"

        ada_steps = [
            {"tool": "write_file", "arguments": {"path": "method/mymethod.py", "content": method}},
            {"tool": "bash", "arguments": {
                "command": "cd method && python -m mymethod --data-dir /task --out ../preds.json --seed 0",
                "timeout": 300}},
            {"tool": "submit_predictions", "arguments": {"path": "preds.json", "method": "mymethod seed 0"}},
            {"tool": "snapshot_publish", "arguments": {"message": "my method", "path": "method"}},
            lambda texts: {"tool": "forum_post", "arguments": {
                "kind": "result", "title": "Vanilla baseline reproduced", "body": "One seed on the synthetic task.",
                "snapshot_id": found(r"published snapshot (\S+)", texts), "entry_point": "mymethod",
                "metrics": {"pgr": float(found(r"PGR (-?[\d.]+)", texts).rstrip(".")), "pgr_se": 0.0, "seeds": 1}}},
            {"tool": "forum_read", "arguments": {}},
            lambda texts: {"tool": "snapshot_fetch", "arguments": {"snapshot_id": found(r"snapshot=(\S+)", texts),
                                                                   "dest": "from_bob"}},
            {"tool": "bash", "arguments": {"command": "cat from_bob/README.md"}},
            lambda texts: {"tool": "forum_reply", "arguments": {"post_id": int(found(r"#(\d+) \[insight\]", texts)),
                                                                "body": "Fetched it; will try it with 3 seeds."}},
            {"tool": "forum_read", "arguments": {}},
            {"tool": "finish", "arguments": {"summary": "baseline posted, Bob's idea fetched"}},
        ]
        with lab.client(ada_token) as ada_client:
            ada = Agent(AgentConfig(name="ada", min_seeds=1), transcript=tmp_path / "ada.jsonl",
                        sandbox=make_sandbox("ada", "bwrap", task=lab.task_dir), client=ada_client,
                        model=get_model("scripted", generator=Conversation(ada_steps)))
            record = ada.run()
        assert record.reason == "done", record

        turns = [r for r in read_transcript(tmp_path / "ada.jsonl") if r["type"] == "turn"]
        results = [t["tool_results"][0] for t in turns]
        errors = [(t["assistant"]["tool_calls"][0]["name"], r["content"]) for t, r in zip(turns, results, strict=True)
                  if r.get("is_error")]
        assert not errors, errors
        assert "exit code 0" in results[1]["content"]
        assert re.search(r"submission #\d+ \(1 seed\) on the public test part: accuracy [01]\.\d+, PGR -?\d", results[2]["content"])
        assert "1 new post(s)" in results[5]["content"] and "by bob" in results[5]["content"]
        assert "Bob's confidence idea" in results[7]["content"]
        assert "no new posts by others" in results[9]["content"]
        assert (tmp_path / "ada" / "from_bob" / "README.md").read_text() == "Bob's confidence idea\n"

        # What the lab recorded, seen from the admin side.
        [submission] = admin.submissions(task=lab.task_name)
        assert submission.agent == "ada" and len(submission.predictions) == lab.task.n_test
        posts = {p.author: p for p in admin.posts()}
        result, insight = posts["ada"], posts["bob"]
        assert result.kind == "result" and result.entry_point == "mymethod" and result.metrics["seeds"] == 1
        assert admin.fetch_snapshot(result.snapshot_id)  # the code is in the store
        assert [r.author for r in admin.get_post(insight.id).replies] == ["ada"]
        board = admin.leaderboard(lab.task_name)
        assert [e.author for e in board.entries] == ["ada"]
