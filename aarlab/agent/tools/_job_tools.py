"""Background jobs: start a command in your sandbox and keep working while it runs.

The tools are thin: the sandbox's job manager (``aarlab.sandbox._jobs.JobManager``, reached as
``ctx.sandbox.jobs``) does the work. Waiting charges the jobs' CPU and GPU time to the agent's budget as it
goes, so an agent whose compute budget runs out is stopped in the middle of a wait like anywhere else.
"""

from __future__ import annotations

from aarlab.agent.tools._registry import ToolContext, ToolError, tool

WAIT_MAX_S = 3600.0  # one wait call at most; the model can wait again


def _jobs(ctx: ToolContext):
    jobs = getattr(ctx.sandbox, "jobs", None)
    if jobs is None:
        raise ToolError("this sandbox runs no background jobs; use bash")
    return jobs


def _call(fn, *args, **kwargs):
    from aarlab.sandbox import SandboxError

    try:
        return fn(*args, **kwargs)
    except SandboxError as exc:  # a refusal (no free slot, unknown job): the model's to handle
        raise ToolError(str(exc)) from None


@tool(needs="jobs")
def job_start(ctx: ToolContext, name: str, command: str, timeout: float | None = None,
              gpus: int | None = None) -> str:
    """Start a command as a named background job in your sandbox (same isolation, limits and environment as
    bash) and return at once. Its output goes to /workspace/.jobs/<name>.log. Each job holds one of your
    compute slots until it ends; starting past them is refused.

    Args:
        name: A short name for the job (letters, digits, '.', '_', '-'), e.g. "seed1".
        command: The command line, run with bash -c in /workspace.
        timeout: Seconds before the job is killed (default: the configured job timeout, at most the time you
            have left).
        gpus: How many of your sandbox's GPUs the job gets (default: one if you have GPUs, else none).
    """
    jobs = _jobs(ctx)
    ctx.agent.account_jobs()
    cap = ctx.agent.config.job_timeout_s
    value = cap if timeout is None or timeout <= 0 else min(float(timeout), cap)
    left = ctx.agent.budget.remaining_wall_s()
    if left is not None:
        value = max(1.0, min(value, left))
    info = _call(jobs.start, name, command, timeout_s=value, gpus=gpus)
    gpu = f", GPU {','.join(map(str, info.gpus))}" if info.gpus else ""
    free = jobs.slots - len(jobs.running())
    return (f"started job {info.name} (slot {info.slot}{gpu}; timeout {value:.0f} s); output: {info.log}. "
            f"{free} of {jobs.slots} slot(s) free.")


@tool(needs="jobs")
def job_list(ctx: ToolContext) -> str:
    """List your background jobs: state, runtime, slot, GPUs, exit code and CPU time."""
    jobs = _jobs(ctx)
    ctx.agent.account_jobs()
    listed = jobs.list()
    if not listed:
        return f"no jobs yet; {jobs.slots} slot(s) free"
    running = sum(1 for j in listed if j.running)
    return (f"{running} of {jobs.slots} slot(s) in use\n" + "\n".join(j.describe() for j in listed))


@tool(needs="jobs")
def job_output(ctx: ToolContext, name: str, tail: int = 4000, offset: int | None = None) -> str:
    """Read a job's output (its log), running or ended.

    Args:
        name: The job's name.
        tail: Show the last this many bytes (when no offset is given).
        offset: Show from this byte of the log on instead (to read on from where you stopped).
    """
    jobs = _jobs(ctx)
    text, start, size = _call(jobs.output, name, tail=tail, offset=offset)
    info = _call(jobs.get, name)
    end = start + len(text.encode())
    head = f"[{info.log}: bytes {start}-{end} of {size} · {info.state}"
    head += f", exit code {info.exit_code}]" if info.exit_code is not None else "]"
    more = f"\n[... read on with offset={end}]" if end < size else ""
    return head + "\n" + (text or "(no output yet)") + more


@tool(needs="jobs")
def job_wait(ctx: ToolContext, names: list[str], timeout: float = 600) -> str:
    """Wait until the named jobs have all ended, or the timeout passes; then show their states.

    Args:
        names: The jobs to wait for.
        timeout: The most seconds to wait (at most an hour per call).
    """
    jobs = _jobs(ctx)
    if not names:
        raise ToolError("job_wait: name at least one job")
    limit = min(max(float(timeout), 0.0), WAIT_MAX_S)
    left = ctx.agent.budget.remaining_wall_s()
    if left is not None:
        limit = min(limit, left)
    # every poll charges the jobs' compute and checks the budget: a spent budget stops the agent mid-wait
    ended = _call(jobs.wait, [str(n) for n in names], limit, poll=ctx.agent.account_jobs)
    ctx.agent.account_jobs()
    still = [j.name for j in ended if j.running]
    head = f"still running after {limit:.0f} s: {', '.join(still)}" if still else "all ended"
    return head + "\n" + "\n".join(j.describe() for j in ended)


@tool(needs="jobs")
def job_kill(ctx: ToolContext, name: str) -> str:
    """Kill a running background job (all its processes) and free its slot.

    Args:
        name: The job's name.
    """
    jobs = _jobs(ctx)
    info = _call(jobs.kill, name, "killed by job_kill")
    ctx.agent.account_jobs()
    return info.describe()
