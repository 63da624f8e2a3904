"""Tools that talk to the lab server with the agent's own token: evaluation, the forum and the code store.

The server is the authority (budgets, result-post rules, authorship); these tools add what the model
needs to act on a refusal: the server's message comes back as a tool error. A server that cannot be
reached is a harness fault (``HarnessError``): the loop stops and the team restarts the agent.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Literal

from aarlab.agent.tools._registry import ToolContext, ToolError, tool
from aarlab.agent.tools._sandbox_tools import _read_bytes

MAX_POST_CHARS = 2_000
# What one post's metrics may take in another agent's context (the server bounds them too, at 4 KB).
MAX_METRICS_CHARS = 500


def _client(ctx: ToolContext):
    if ctx.client is None:
        raise ToolError("this agent is not connected to a lab server")
    return ctx.client


def _task(ctx: ToolContext) -> str:
    if not ctx.task:
        raise ToolError("no task is set for this agent")
    return ctx.task


def _read_predictions(ctx: ToolContext, path: str) -> list:
    raw = _read_bytes(ctx, path)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ToolError(f"{path} is not valid JSON: {exc}") from None


@tool(needs="client")
def submit_predictions(ctx: ToolContext, path: str | list[str], snapshot_id: str | None = None,
                       method: str | None = None) -> str:
    """Submit a method's predictions for scoring on the public part of the test set — one seed, or several
    seeds at once (up to 10) to learn the mean and its spread over seeds. Submissions are limited (per run and
    per hour): submit to measure, not to search. You get this submission's own coarse public accuracy and PGR
    (the mean over its seeds), the seed SE and the test-sampling SE of the public part.

    Args:
        path: The predictions file in your sandbox — a JSON list of label indices, one per line of
            /task/test.jsonl, in its order — or a list of such files (one per seed), or one file holding a list
            of such lists (one per seed).
        snapshot_id: The published snapshot whose code produced these predictions, if any.
        method: A short name of the method (e.g. "vanilla-soft seeds 0-2").
    """
    from aarlab.w2s.taskdir import validate_predictions

    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        raise ToolError("give a predictions file, or a list of files (one per seed)")
    runs = []
    for one in paths:
        data = _read_predictions(ctx, one)
        seeds = data if isinstance(data, list) and data and all(isinstance(r, list) for r in data) else [data]
        runs += [validate_predictions(run, None, None, source=one) for run in seeds]
    if len(runs) > 10:
        raise ToolError(f"{len(runs)} seeds: a submission carries at most 10")
    result = _client(ctx).submit(_task(ctx), runs if len(runs) > 1 else runs[0], snapshot_id=snapshot_id,
                                 method=method)
    ctx.state["submissions_left"] = [result.remaining_run, result.remaining_hour]
    left = f"Submissions left: {result.remaining_run} this run, {result.remaining_hour} this hour."
    seeds = f"{result.n_seeds} seeds" if result.n_seeds > 1 else "1 seed"
    spread = f" ± {result.public_pgr_se:.3f} (seed SE)" if result.n_seeds > 1 else ""
    step = result.public_pgr_step
    grid = f", PGR on a grid of {step:.3f}: a seed SE below one step can show as 0" if step else ""
    step_hint = f" and metrics pgr_step={step:.3f}" if step else ""
    return (
        f"submission #{result.id} ({seeds}) on the public test part: accuracy {result.public_accuracy:.3f}, "
        f"PGR {result.public_pgr:.3f}{spread}, test-sampling SE {result.public_pgr_test_se:.3f} "
        f"(coarse: accuracy on a grid of {result.step:g}{grid}){'; your best public accuracy so far' * result.improved}. "
        f"To report it in a result post, pass submission_id={result.id}{step_hint}. {left}"
    )


def _fmt_stat(value: float | None, se: float | None = None, n: int | None = None,
              step: float | None = None) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}"
    from aarlab.server import below_grid

    if below_grid(se, step, 3):
        text += f" ± <{step:.3f} (below the reply's grid)"
    elif se is not None:
        text += f" ± {se:.3f}"
    if n is not None:
        text += f" (n={n})"
    return text


@tool(needs="client")
def leaderboard(ctx: ToolContext) -> str:
    """Show the task's leaderboard: the fixed baselines and every result post with its claimed, public and
    verified PGR (verified = re-run by the lab on held-out data)."""
    board = _client(ctx).leaderboard(ctx.task)
    lines = [f"leaderboard for {board.task or 'all tasks'} (sorted by {board.sort})", "baselines:"]
    for b in board.baselines:
        lines.append(f"  {b.name:8} {b.model}: accuracy {_fmt_stat(b.accuracy, b.accuracy_se, b.n_seeds)}, PGR {b.pgr:.2f}")
    if not board.entries:
        lines.append("no results posted yet")
    for e in board.entries[:30]:
        rank = "quarantined" if e.quarantined else (f"#{e.rank}" if e.rank is not None else "-")
        flags = f" flags: {', '.join(f.detector for f in e.flags)}" if e.flags else ""
        lines.append(
            f"  {rank} post {e.post_id} by {e.author}: {e.title!r} [{e.method or '?'} @ {e.snapshot_id or '?'}] "
            f"claimed {_fmt_stat(e.claimed_pgr, e.claimed_pgr_se, e.claimed_seeds, e.claimed_pgr_step)}, "
            f"public {_fmt_stat(e.public_pgr, e.public_pgr_se, e.submission_seeds)}"
            f"{f' test SE {e.public_pgr_test_se:.3f}' if e.public_pgr_test_se is not None else ''}, "
            f"verified {_fmt_stat(e.verified_pgr, e.verified_pgr_se, e.verified_seeds)} ({e.verification_status or '-'})"
            f"{flags}"
        )
    return "\n".join(lines)


def _fmt_post(post: Any, full: bool = True) -> str:
    head = f"#{post.id} [{post.kind}] {post.title!r} by {post.author}"
    if post.tags:
        head += f" tags={','.join(post.tags)}"
    if post.snapshot_id:
        head += f" snapshot={post.snapshot_id}"
    if post.entry_point:
        head += f" entry_point={post.entry_point}"
    if post.metrics:
        metrics = json.dumps(post.metrics, sort_keys=True)
        head += " metrics=" + (metrics if len(metrics) <= MAX_METRICS_CHARS else metrics[:MAX_METRICS_CHARS] + " [...cut]")
    if post.verification is not None:
        v = post.verification
        head += f" verification={v.status}" + (f" verified_pgr={v.verified_pgr:.3f}" if v.verified_pgr is not None else "")
    if not full:
        return head
    body = post.body if len(post.body) <= MAX_POST_CHARS else post.body[:MAX_POST_CHARS] + " [...cut]"
    lines = [head, "  " + body.replace("\n", "\n  ")] if body else [head]
    for r in post.replies or []:
        lines.append(f"  ↳ reply #{r.id} by {r.author}: {r.body[:500]}")
    if post.n_replies and not post.replies:
        lines.append(f"  ({post.n_replies} replies)")
    return "\n".join(lines)


@tool(needs="client")
def forum_post(
    ctx: ToolContext,
    kind: Literal["result", "hypothesis", "insight", "error", "question"],
    title: str,
    body: str,
    tags: list[str] | None = None,
    snapshot_id: str | None = None,
    metrics: dict[str, Any] | None = None,
    entry_point: str | None = None,
    submission_id: int | None = None,
) -> str:
    """Post to the lab forum that all researchers read. A `result` must name a published snapshot, the
    entry point the lab re-runs on held-out data (`python -m <entry_point> --data-dir D --out F --seed S`
    from the snapshot root) and metrics {"pgr": mean, "pgr_se": standard error, "seeds": n} over at least
    the required number of seeds.

    Args:
        kind: result, hypothesis, insight, error (a negative result or a bug), or question.
        title: A one-line summary.
        body: What you did, what you found, and how sure you are (Markdown).
        tags: Short topic tags.
        snapshot_id: The snapshot holding the code (required for a result).
        metrics: For a result: {"pgr": ..., "pgr_se": ..., "seeds": ...} and any extra numbers.
        entry_point: For a result: the module to run with python -m, relative to the snapshot root.
        submission_id: For a result: your submission whose numbers it reports (the leaderboard shows them).
    """
    if kind == "result":
        missing = [n for n, v in (("snapshot_id", snapshot_id), ("entry_point", entry_point), ("metrics", metrics)) if not v]
        if missing:
            raise ToolError(f"a result post needs {', '.join(missing)}")
        seeds = metrics.get("seeds") if isinstance(metrics, dict) else None
        min_seeds = ctx.agent.config.min_seeds
        if not isinstance(seeds, int) or seeds < min_seeds:
            raise ToolError(f"a result needs metrics.seeds >= {min_seeds} (independent seeds), got {seeds!r}")
    post = _client(ctx).post(kind, title, body, tags=tags or [], snapshot_id=snapshot_id, metrics=metrics,
                             entry_point=entry_point, task=ctx.task if kind == "result" else None,
                             submission_id=submission_id)
    return f"posted #{post.id} ({post.kind}): {post.title!r}"


@tool(needs="client")
def forum_read(ctx: ToolContext) -> str:
    """Read the forum posts by other researchers that are new since you last read it (with their replies)."""
    cursor = int(ctx.state.get("forum_cursor", 0))
    posts = _client(ctx).posts(since_id=cursor or None, limit=50)
    if posts:
        ctx.state["forum_cursor"] = max(cursor, *(p.id for p in posts))
    others = [p for p in sorted(posts, key=lambda p: p.id) if p.author != ctx.agent.config.name]
    if not others:
        return "no new posts by others since you last read the forum"
    more = " (the 50 newest; use forum_search for older ones)" if len(posts) == 50 else ""
    return f"{len(others)} new post(s){more}:\n\n" + "\n\n".join(_fmt_post(p) for p in others)


@tool(needs="client")
def forum_reply(ctx: ToolContext, post_id: int, body: str) -> str:
    """Reply to a forum post (ask about a result, report a reproduction, point to a bug).

    Args:
        post_id: The post's number.
        body: Your reply (Markdown).
    """
    reply = _client(ctx).reply(post_id, body)
    return f"replied to #{post_id} (reply #{reply.id})"


@tool(needs="client")
def forum_search(ctx: ToolContext, query: str) -> str:
    """Full-text search of all forum posts.

    Args:
        query: Words to look for (e.g. "confidence loss seeds").
    """
    posts = _client(ctx).search(query, limit=20)
    if not posts:
        return f"no posts match {query!r}"
    return f"{len(posts)} post(s) match {query!r}:\n\n" + "\n\n".join(_fmt_post(p) for p in posts)


@tool(needs="client")
def snapshot_publish(ctx: ToolContext, message: str, path: str = ".") -> str:
    """Publish a directory of your workspace to the lab's code store (immutable, content-addressed) so that
    others can fetch it and the lab can re-run it. Caches and virtualenvs are left out.

    Args:
        message: What this code is (like a commit message).
        path: The directory to publish, relative to /workspace; it becomes the snapshot's root.
    """
    from aarlab.sandbox import snapshot_tar

    tar = snapshot_tar(ctx.sandbox, path)
    info = _client(ctx).publish_snapshot(tar, message, parent=ctx.state.get("snapshot_parent"))
    ctx.state["snapshot_parent"] = info.id
    hook = getattr(ctx.agent, "on_publish", None)
    if hook is not None:
        hook(info.id)
    return f"published snapshot {info.id} ({info.n_files} files, {info.size:,} bytes) from {path}"


@tool(needs="client")
def snapshot_fetch(ctx: ToolContext, snapshot_id: str, dest: str | None = None) -> str:
    """Fetch a published snapshot (yours or another researcher's) into your workspace.

    Args:
        snapshot_id: The snapshot's id (from a forum post or the leaderboard).
        dest: The directory to put it in, relative to /workspace (default: snapshots/<id>).
    """
    from aarlab.sandbox import extract_tar_safely

    data = _client(ctx).fetch_snapshot(snapshot_id)
    dest = dest or f"snapshots/{snapshot_id[:12]}"
    # Check and unpack on the host first (extract_tar_safely refuses links, absolute paths, ..), then copy
    # the files in through the sandbox, which works for every backend (also remote ones).
    with tempfile.TemporaryDirectory(prefix="aarlab-fetch-") as tmp:
        files = extract_tar_safely(data, tmp)
        for rel in files:
            ctx.sandbox.write_file(f"{dest.rstrip('/')}/{rel}", (Path(tmp) / rel).read_bytes())
    ctx.state["snapshot_parent"] = snapshot_id
    listing = "\n".join(files[:100]) + (f"\n[... and {len(files) - 100} more]" if len(files) > 100 else "")
    return f"fetched snapshot {snapshot_id} into {dest}/ ({len(files)} files):\n{listing}"
