"""Dashboard page latency on a large run: 9 agents x 5,000 transcript turns, 2,000 forum posts.

    .venv/bin/python benchmarks/dashboard.py [--agents 9] [--turns 5000] [--posts 2000] [--repeat 10]

Starts a real lab server (uvicorn on 127.0.0.1, SQLite in a temp run dir), fills it through the client
(agents, snapshots, submissions, posts with replies, verifications, flags), writes the transcripts, then
times every page over HTTP: one cold request (the first view after the data changed) and ``--repeat`` warm
ones. The target is every page served in <= 200 ms (the median of the warm requests; p95 and the cold
request are printed beside it, with the machine's load average, since a shared machine adds outliers).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

TARGET_MS = 200.0
VIEWER_TOKEN = "bench-viewer-" + "x" * 24


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _labels(task_dir: Path) -> list[int]:
    path = next(Path(task_dir).rglob("test_labels.jsonl"))
    return [json.loads(line)["label"] for line in path.read_text().splitlines() if line.strip()]


def write_transcript(path: Path, agent: str, turns: int, start: float, rng: random.Random) -> int:
    """A long transcript with realistic record sizes (thoughts, a tool call, a few hundred bytes of output)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    output = "\n".join(f"epoch {i}: loss {rng.random():.4f} acc {rng.random():.4f}" for i in range(12))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"type": "start", "time": start, "agent": agent, "system_prompt": "You are a researcher.",
                             "tools": [], "config": {"model": "scripted:demo"}}) + "\n")
        for step in range(1, turns + 1):
            name = "submit_predictions" if step % 50 == 0 else "forum_post" if step % 37 == 0 else "bash"
            record = {
                "type": "turn", "time": start + step * 2.0, "agent": agent, "step": step,
                "assistant": {"role": "assistant", "content": f"Step {step}. I will try a variation of the method "
                              f"with learning rate {rng.choice([1e-3, 5e-4, 1e-4])} and check the validation curve.",
                              "tool_calls": [{"id": f"c{step}", "name": name,
                                              "arguments": {"command": f"python train.py --seed {step}"}}]},
                "tool_results": [{"role": "tool", "tool_call_id": f"c{step}", "content": output}],
                "usage": {"input_tokens": 4000 + step, "output_tokens": 300}, "cost_usd": 0.004, "latency_s": 1.2,
            }
            if step % 500 == 0:
                fh.write(json.dumps({"type": "compaction", "time": start + step * 2.0 + 1, "agent": agent,
                                     "step": step, "summary": "Summary of earlier work.", "kept_from_step": step - 20,
                                     "cost_usd": 0.01}) + "\n")
            fh.write(json.dumps(record) + "\n")
    return path.stat().st_size


def populate(lab, n_agents: int, turns: int, n_posts: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    admin = lab.client()
    labels = _labels(lab.task_dir)
    agents = {}
    for i in range(n_agents):
        name = f"agent{i}"
        agents[name] = lab.client(admin.create_agent(name, f"Direction {i}: a long description of the idea. " * 4).token)
    snaps: dict[str, list[str]] = {}
    for name, client in agents.items():
        parent = None
        snaps[name] = []
        for v in range(3):
            info = client.publish_snapshot(_tar({"method.py": f"# {name} v{v}\nLR = {0.1 / (v + 1)}\n" + "x = 1\n" * 200,
                                                 "README.md": f"{name} v{v}\n"}), f"{name} v{v}", parent=parent)
            parent = info.id
            snaps[name].append(info.id)
        for k in range(20):
            preds = [y if rng.random() < 0.7 + 0.01 * k else 1 - y for y in labels]
            client.submit(lab.task_name, preds, snapshot_id=snaps[name][-1])
    post_ids = []
    names = list(agents)
    for k in range(n_posts):
        name = names[k % len(names)]
        client = agents[name]
        if k % 10 == 0:
            post = client.post("result", f"Result {k} from {name}", f"## Method\nWe tried variant {k}.\n" * 5,
                               tags=["result", f"t{k % 13}"], snapshot_id=snaps[name][-1],
                               metrics={"pgr": rng.uniform(0, 0.8), "pgr_se": 0.03, "seeds": 3}, entry_point="method")
        elif k % 10 == 5 and post_ids:
            client.reply(rng.choice(post_ids), f"Reply {k}: interesting, did you try a smaller learning rate?")
            continue
        else:
            post = client.post(rng.choice(["insight", "hypothesis", "question", "error"]), f"Post {k} by {name}",
                               f"Observation {k}: confidence thresholds around {rng.random():.2f} help. " * 6,
                               tags=[f"t{k % 13}", "confidence"])
        post_ids.append(post.id)
    results = [e.post_id for e in admin.leaderboard().entries]
    for pid in results[: len(results) // 2]:
        admin.record_verification(pid, "done", verified_pgr=rng.uniform(0, 0.7), se=0.03, seeds=3)
    for i, name in enumerate(names):
        admin.add_flag("heldout_gap", "warning" if i % 3 else "severe", f"{name}'s claim is above its re-run",
                       evidence={"claimed": 0.6, "verified": 0.2}, agent=name, post_id=results[i])
    start = time.time() - turns * 2.0
    size = 0
    for name in names:
        size += write_transcript(lab.run_dir / "transcripts" / f"{name}.jsonl", name, turns, start, rng)
    return {"agents": names, "snapshot": snaps[names[0]][-1], "post": post_ids[len(post_ids) // 2],
            "transcript_mb": size / 1e6, "results": len(results)}


def measure(client: httpx.Client, path: str, repeat: int) -> dict:
    t0 = time.perf_counter()
    response = client.get(path)
    cold = (time.perf_counter() - t0) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{path}: HTTP {response.status_code}\n{response.text[:500]}")
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        client.get(path).raise_for_status()
        warm.append((time.perf_counter() - t0) * 1000)
    warm.sort()
    p95 = warm[min(len(warm) - 1, int(round(0.95 * (len(warm) - 1))))]
    return {"path": path, "cold": cold, "median": statistics.median(warm), "p95": p95, "kb": len(response.content) / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=9)
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)

    from aarlab.server.testing import running_lab

    with tempfile.TemporaryDirectory(prefix="aarlab-dash-bench-") as tmp, running_lab(
            tmp, viewer_token=VIEWER_TOKEN, submissions_per_hour=100_000, submissions_per_run=100_000) as lab:
        t0 = time.perf_counter()
        info = populate(lab, args.agents, args.turns, args.posts)
        print(f"filled the lab in {time.perf_counter() - t0:.1f} s: {args.agents} agents x {args.turns} turns "
              f"({info['transcript_mb']:.0f} MB of transcripts), {args.posts} posts ({info['results']} results)",
              file=sys.stderr)
        a0 = info["agents"][0]
        pages = [
            "/", "/leaderboard", "/leaderboard?sort=claimed&dir=asc", "/plots", "/forum", "/forum?q=confidence+thresholds",
            "/forum?tag=t3&page=3", f"/forum/posts/{info['post']}", f"/agents/{a0}", f"/agents/{a0}?page=1",
            f"/agents/{a0}?page=60", f"/_partials/agents/{a0}/tail?after={args.turns - 5}", "/snapshots",
            f"/snapshots/{info['snapshot']}?file=method.py", f"/snapshots/{info['snapshot']}?against=parent",
            "/flags?status=all", "/_partials/overview", "/_partials/leaderboard",
        ]
        with httpx.Client(base_url=lab.url, headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}, timeout=60) as client:
            # The dashboard indexes the transcripts in the background from the moment it is mounted; the
            # first view after they were written waits for (or does) the scan of what is new.
            t0 = time.perf_counter()
            client.get("/").raise_for_status()
            first = (time.perf_counter() - t0) * 1000
            rows = [measure(client, path, args.repeat) for path in pages]
    print(f"\nfirst page view after writing {info['transcript_mb']:.0f} MB of transcripts (indexes them): "
          f"{first:.0f} ms\n")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} on {os.cpu_count()} CPUs; {args.repeat} warm requests per page\n")
    print("| page | cold ms | median ms | p95 ms | KB | median ≤ 200 ms |")
    print("|---|---:|---:|---:|---:|:-:|")
    ok = True
    for r in rows:
        good = r["median"] <= TARGET_MS
        ok &= good
        shown = re.sub(r"[0-9a-f]{64}", lambda m: m.group()[:10] + "…", r["path"])
        print(f"| `{shown}` | {r['cold']:.0f} | {r['median']:.0f} | {r['p95']:.0f} | {r['kb']:.0f} | "
              f"{'yes' if good else 'NO'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
