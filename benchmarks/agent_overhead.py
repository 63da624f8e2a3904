"""How much the agent harness costs per step, and how much of the prompt the provider serves from its cache.

    python benchmarks/agent_overhead.py [--steps 300] [--cache-steps 200] [--job-seeds 3] [--seed-work 15]

1. Harness time per step: an agent on the scripted provider runs ``--steps`` steps of one ``bash`` call each
   against an in-memory sandbox. Model time (inside ``generate``) and tool time (inside the sandbox's
   ``exec``) are measured and subtracted from each step's wall time; what remains is the loop itself:
   building the request, checking arguments, the pending side file, the fsync'd transcript record, the budget
   note. Target: ≤ 5 ms (median). The fsync of each turn record runs while the next model call is in
   flight and is waited for before the next tool runs, so with an instant model its latency shows in full;
   the "50 ms model" row (a real API takes seconds) shows the loop as it runs in practice.
2. Cache share: the same kind of run on the ``anthropic`` provider, through the real SDK, against the local
   Messages-API server of ``aarlab.llm.testing`` (which bills cache reads and writes from the request's
   ``cache_control`` breakpoints as the API does), with compaction when the prompt reaches the context
   limit. Share = cache-read prompt tokens / all prompt tokens. Target: ≥ 80%.
3. Seeds as jobs: a scripted agent runs ``--job-seeds`` K seeds of the same CPU-bound command (a pure-Python
   loop of ``--seed-work`` million steps, one core each) in a real sandbox (bwrap, else process) with K job
   slots: one after another with ``bash``, then as K background jobs started in one turn and waited for with
   ``job_wait``. Wall time of the whole agent run, each way, on the same machine. With C free cores the
   jobs run about min(K, C) times faster; the row shows what this machine gives.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aarlab.agent import Agent, AgentConfig  # noqa: E402
from aarlab.llm import get_model  # noqa: E402
from aarlab.llm.testing import FakeAnthropicServer  # noqa: E402
from aarlab.sandbox import ExecResult, SandboxSpec, check_backend, create  # noqa: E402

LOG_LINE = "epoch {i:3d}  loss {loss:.4f}  weak-label agreement {agree:.3f}  test accuracy {acc:.3f}\n"


class MemorySandbox:
    """A sandbox whose commands return a canned training log at once (no process is started)."""

    backend, isolates = "memory", True

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.exec_s = 0.0
        self.calls = 0

    def exec(self, cmd, timeout=None, env=None, cwd=None):
        start = time.perf_counter()
        self.calls += 1
        out = "".join(LOG_LINE.format(i=i, loss=1 / (i + 1), agree=0.7, acc=0.75) for i in range(self.calls % 20))
        result = ExecResult(exit_code=0, stdout=out, duration_s=0.0)
        self.exec_s += time.perf_counter() - start
        return result

    def read_file(self, path):
        return self.files.get(path, b"# notebook\n")

    def write_file(self, path, data):
        self.files[path] = data.encode() if isinstance(data, str) else data

    def list_files(self, path="."):
        return sorted(self.files)


class TimedModel:
    """Wraps a model and adds up the time spent inside ``generate``."""

    def __init__(self, model):
        self.model, self.name, self.generate_s = model, model.name, 0.0

    def generate(self, messages, tools, config=None):
        start = time.perf_counter()
        try:
            return self.model.generate(messages, tools, config)
        finally:
            self.generate_s += time.perf_counter() - start


def script(n: int) -> list[dict]:
    return [{"content": f"Step {i}: next seed.", "tool": "bash",
             "arguments": {"command": f"python train.py --seed {i % 5} --lr 1e-4 | tail -20"}} for i in range(n)]


def harness_overhead(steps: int, fsync: bool = True, model_delay_s: float = 0.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = MemorySandbox()
        model = TimedModel(get_model("scripted", script=script(steps), delay_s=model_delay_s))
        agent = Agent(AgentConfig(name="bench", max_steps=steps, context_limit_tokens=10_000_000),
                      transcript=Path(tmp) / "bench.jsonl", sandbox=sandbox, model=model)
        agent._start_or_resume()
        agent.writer.fsync = fsync
        per_step = []
        for _ in range(steps):
            model.generate_s, sandbox.exec_s = 0.0, 0.0
            start = time.perf_counter()
            agent.step()
            per_step.append((time.perf_counter() - start - model.generate_s - sandbox.exec_s) * 1000)
        agent.writer.close()
    per_step.sort()
    return {"steps": steps, "median_ms": statistics.median(per_step), "p95_ms": per_step[int(0.95 * len(per_step))],
            "mean_ms": statistics.fmean(per_step)}


def cache_share(steps: int) -> dict:
    counter = iter(range(10**9))

    def reply(request):
        if not request.get("tools"):  # a compaction summary
            return {"text": "Summary: ran seeds 0-4 of the training script repeatedly; losses fell as expected."}
        i = next(counter)
        return {"text": f"Step {i}: next seed.",
                "tool_calls": [{"name": "bash", "arguments": {"command": f"python train.py --seed {i % 5}"}}]}

    with tempfile.TemporaryDirectory() as tmp, FakeAnthropicServer(reply=reply) as server:
        model = get_model("anthropic:claude-sonnet-4-5", base_url=server.url, api_key="bench")
        agent = Agent(AgentConfig(name="bench", max_steps=steps, context_limit_tokens=60_000, keep_recent_turns=8),
                      transcript=Path(tmp) / "bench.jsonl", sandbox=MemorySandbox(), model=model)
        agent.run()
        from aarlab.agent import read_transcript

        records = read_transcript(Path(tmp) / "bench.jsonl")
    turns = [r["usage"] for r in records if r["type"] == "turn"]
    prompt = sum(u["input_tokens"] + u["cache_read_tokens"] + u["cache_write_tokens"] for u in turns)
    read = sum(u["cache_read_tokens"] for u in turns)
    cost = sum(r.get("cost_usd") or 0 for r in records if r["type"] in ("turn", "compaction"))
    uncached_cost = (prompt * 3.0 + sum(u["output_tokens"] for u in turns) * 15.0) / 1e6
    return {"steps": len(turns), "compactions": sum(r["type"] == "compaction" for r in records),
            "prompt_tokens": prompt, "cache_read_share": read / prompt if prompt else 0.0,
            "cost_usd": cost, "uncached_cost_usd": uncached_cost}


def seed_command(seed: int, million_steps: int) -> str:
    """One seed's run: a CPU-bound pure-Python loop (one core) that prints a result line."""
    return (f"python -c 's = 0\nfor i in range({million_steps} * 1000000): s += i % 7\n"
            f"print(\"seed {seed}\", s)'")


def jobs_vs_sequential(seeds: int, million_steps: int) -> dict:
    """Wall time of an agent running ``seeds`` seeds one after another (``bash``) and as background jobs."""
    backend = "bwrap" if check_backend("bwrap")[0] else "process"
    sequential = [{"tool": "bash", "arguments": {"command": seed_command(s, million_steps), "timeout": 600}}
                  for s in range(seeds)]
    as_jobs = [
        {"tool_calls": [{"job_start": {"name": f"seed{s}", "command": seed_command(s, million_steps)}}
                        for s in range(seeds)]},
        {"tool": "job_wait", "arguments": {"names": [f"seed{s}" for s in range(seeds)], "timeout": 600}},
    ]
    finish = {"tool": "finish", "arguments": {"summary": "seeds done"}}
    walls = {}
    for label, script_ in (("sequential", sequential), ("jobs", as_jobs)):
        with tempfile.TemporaryDirectory() as tmp:
            spec = SandboxSpec(workspace=Path(tmp) / "ws", name=f"bench-{label}", memory_mb=1024, tmp_mb=64,
                               default_timeout_s=600, job_slots=seeds, job_state=Path(tmp) / "jobs.json",
                               allow_weak_limits=True)
            with create(backend, spec) as sandbox:
                agent = Agent(AgentConfig(name="bench", model="scripted", max_steps=len(script_) + 2),
                              transcript=Path(tmp) / "bench.jsonl", sandbox=sandbox,
                              model=get_model("scripted", script=[*script_, finish]))
                start = time.perf_counter()
                stop = agent.run()
                walls[label] = time.perf_counter() - start
                if stop.reason != "done":
                    raise RuntimeError(f"the {label} run stopped early: {stop.reason} ({stop.detail})")
                ended = [j for j in sandbox.jobs.list() if j.exit_code == 0] if label == "jobs" else []
                if label == "jobs" and len(ended) != seeds:
                    raise RuntimeError(f"only {len(ended)} of {seeds} jobs exited cleanly: {sandbox.jobs.list()}")
    return {"seeds": seeds, "backend": backend, "cores": os.cpu_count(), **walls,
            "speedup": walls["sequential"] / walls["jobs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cache-steps", type=int, default=200)
    parser.add_argument("--job-seeds", type=int, default=3, help="K: seeds run one after another, then as jobs")
    parser.add_argument("--seed-work", type=int, default=15, help="million loop steps per seed (one core)")
    args = parser.parse_args()
    fsynced, buffered = harness_overhead(args.steps, fsync=True), harness_overhead(args.steps, fsync=False)
    slow_model = harness_overhead(max(20, args.steps // 5), fsync=True, model_delay_s=0.05)
    cache = cache_share(args.cache_steps)
    jobs = jobs_vs_sequential(args.job_seeds, args.seed_work)
    rows = [
        ("harness time per step, median, instant model (fsync per turn)", f"{fsynced['median_ms']:.2f} ms", "≤ 5 ms"),
        ("harness time per step, p95, instant model (fsync per turn)", f"{fsynced['p95_ms']:.2f} ms", ""),
        ("harness time per step, median, 50 ms model (fsync overlapped)", f"{slow_model['median_ms']:.2f} ms",
         "≤ 5 ms"),
        ("harness time per step, median, no fsync (CPU cost of the loop)", f"{buffered['median_ms']:.2f} ms", ""),
        (f"prompt tokens served from cache ({cache['steps']} steps, {cache['compactions']} compactions)",
         f"{cache['cache_read_share']:.1%}", "≥ 80%"),
        ("cost of that run with caching vs without (Sonnet prices)",
         f"${cache['cost_usd']:.2f} vs ${cache['uncached_cost_usd']:.2f}", ""),
        (f"{jobs['seeds']} seeds as jobs vs one after another, agent wall time ({jobs['backend']}, "
         f"{jobs['cores']} cores)", f"{jobs['jobs']:.1f} s vs {jobs['sequential']:.1f} s "
         f"(×{jobs['speedup']:.2f})", "≈ ×min(K, cores)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value | target |")
    print(f"|{'-' * (width + 2)}|-------|--------|")
    for name, value, target in rows:
        print(f"| {name.ljust(width)} | {value} | {target} |")


if __name__ == "__main__":
    main()
