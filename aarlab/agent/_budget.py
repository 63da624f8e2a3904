"""Budgets with hard stops: tokens, dollars, steps and wall-clock, per agent and for the whole team.

A ``Budget`` is a node in a small tree: the team makes one global budget and each agent gets a child of it
(``global_budget.child("alice", limits)``). Charging a child charges its ancestors; ``check()`` raises
``BudgetExhausted`` when the node *or any ancestor* is spent. The loop checks before every model call, so an
agent stops within one model call of any limit. The tree shares one lock, so agents in threads can charge
the same global budget safely.

Wall-clock is counted per node from its creation (plus time restored from an earlier session), so an
agent's ``max_wall_s`` counts the time it actually ran, across resumes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from pydantic import BaseModel, Field

from aarlab.agent._stops import BudgetExhausted
from aarlab.sandbox import format_duration


class BudgetLimits(BaseModel):
    """Hard limits; ``None`` means unlimited."""

    max_usd: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    max_steps: int | None = Field(default=None, ge=0)
    max_wall_s: float | None = Field(default=None, ge=0)
    # compute of background jobs: CPU time of their process trees, GPU time (runtime x GPUs held)
    max_cpu_hours: float | None = Field(default=None, ge=0)
    max_gpu_hours: float | None = Field(default=None, ge=0)


@dataclass
class Spend:
    """What has been used so far."""

    usd: float = 0.0
    tokens: int = 0
    steps: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # background jobs' CPU seconds
    gpu_s: float = 0.0  # background jobs' GPU seconds


class Budget:
    """A thread-safe budget node. Use ``Budget(limits)`` for a root and ``root.child(name, limits)`` below it."""

    def __init__(self, limits: BudgetLimits | None = None, *, name: str = "global", parent: Budget | None = None):
        self.limits = limits or BudgetLimits()
        self.name = name
        self.parent = parent
        self._lock: threading.RLock = parent._lock if parent else threading.RLock()
        self._usd = 0.0
        self._tokens = 0
        self._steps = 0
        self._cpu_s = 0.0
        self._gpu_s = 0.0
        self._wall_offset = 0.0
        self._clock_start = time.monotonic()
        self._children: dict[str, Budget] = {}

    # -- the tree -------------------------------------------------------------------------------------
    def child(self, name: str, limits: BudgetLimits | None = None) -> Budget:
        """The child budget called ``name`` (made on first use; a later call updates its limits and keeps
        what it spent, so an agent restarted in the same process does not count its spend twice)."""
        with self._lock:
            node = self._children.get(name)
            if node is None:
                node = self._children[name] = Budget(limits, name=name, parent=self)
            elif limits is not None:
                node.limits = limits
            return node

    def _ancestry(self):
        node: Budget | None = self
        while node is not None:
            yield node
            node = node.parent

    # -- spending -------------------------------------------------------------------------------------
    def charge(self, usd: float = 0.0, tokens: int = 0, steps: int = 0, cpu_s: float = 0.0,
               gpu_s: float = 0.0) -> None:
        """Add spend to this node and all its ancestors."""
        with self._lock:
            for node in self._ancestry():
                node._usd += usd
                node._tokens += tokens
                node._steps += steps
                node._cpu_s += cpu_s
                node._gpu_s += gpu_s

    def restore(self, spend: Spend) -> None:
        """Set this node's spend to ``spend`` (from a transcript on resume); ancestors get the difference,
        so restoring twice is harmless. Wall-clock restarts from ``spend.wall_s``."""
        with self._lock:
            d_usd, d_tokens, d_steps = spend.usd - self._usd, spend.tokens - self._tokens, spend.steps - self._steps
            d_cpu, d_gpu = spend.cpu_s - self._cpu_s, spend.gpu_s - self._gpu_s
            self._usd, self._tokens, self._steps = spend.usd, spend.tokens, spend.steps
            self._cpu_s, self._gpu_s = spend.cpu_s, spend.gpu_s
            for node in self._ancestry():
                if node is not self:
                    node._usd += d_usd
                    node._tokens += d_tokens
                    node._steps += d_steps
                    node._cpu_s += d_cpu
                    node._gpu_s += d_gpu
            self._wall_offset = spend.wall_s
            self._clock_start = time.monotonic()

    @property
    def spent(self) -> Spend:
        with self._lock:
            return Spend(self._usd, self._tokens, self._steps, self.elapsed_s, self._cpu_s, self._gpu_s)

    @property
    def elapsed_s(self) -> float:
        return self._wall_offset + (time.monotonic() - self._clock_start)

    # -- limits ---------------------------------------------------------------------------------------
    def exhausted(self) -> str | None:
        """Why this node or an ancestor is spent (a sentence), or ``None``."""
        with self._lock:
            for node in self._ancestry():
                lim, who = node.limits, "team" if node.parent is None and node is not self else node.name
                if lim.max_usd is not None and node._usd >= lim.max_usd:
                    return f"{who} dollar budget spent (${node._usd:.4f} of ${lim.max_usd:.2f})"
                if lim.max_tokens is not None and node._tokens >= lim.max_tokens:
                    return f"{who} token budget spent ({node._tokens:,} of {lim.max_tokens:,})"
                if lim.max_steps is not None and node._steps >= lim.max_steps:
                    return f"{who} step budget spent ({node._steps} of {lim.max_steps})"
                if lim.max_cpu_hours is not None and node._cpu_s >= lim.max_cpu_hours * 3600:
                    return f"{who} CPU-hour budget spent ({node._cpu_s / 3600:.3f} of {lim.max_cpu_hours:g} h)"
                if lim.max_gpu_hours is not None and node._gpu_s >= lim.max_gpu_hours * 3600:
                    return f"{who} GPU-hour budget spent ({node._gpu_s / 3600:.3f} of {lim.max_gpu_hours:g} h)"
                if lim.max_wall_s is not None and node.elapsed_s >= lim.max_wall_s:
                    return f"{who} time budget spent ({node.elapsed_s:.0f} s of {lim.max_wall_s:.0f} s)"
        return None

    def check(self) -> None:
        """Raise ``BudgetExhausted`` if this node or an ancestor is spent."""
        if reason := self.exhausted():
            raise BudgetExhausted(reason)

    def remaining_wall_s(self) -> float | None:
        """Seconds left before the tightest wall-clock limit on the path to the root (None: unlimited)."""
        left = [n.limits.max_wall_s - n.elapsed_s for n in self._ancestry() if n.limits.max_wall_s is not None]
        return max(0.0, min(left)) if left else None

    def describe(self) -> str:
        """One line for the model: what is left of each limited quantity (the tightest of agent and team)."""
        parts = []
        with self._lock:
            nodes = list(self._ancestry())
            steps = [(n.limits.max_steps - n._steps, n.limits.max_steps) for n in nodes if n.limits.max_steps is not None]
            usd = [(n.limits.max_usd - n._usd, n.limits.max_usd) for n in nodes if n.limits.max_usd is not None]
            tokens = [(n.limits.max_tokens - n._tokens, n.limits.max_tokens) for n in nodes if n.limits.max_tokens is not None]
            cpu = [(n.limits.max_cpu_hours - n._cpu_s / 3600, n.limits.max_cpu_hours) for n in nodes
                   if n.limits.max_cpu_hours is not None]
            gpu = [(n.limits.max_gpu_hours - n._gpu_s / 3600, n.limits.max_gpu_hours) for n in nodes
                   if n.limits.max_gpu_hours is not None]
        if steps:
            left, cap = min(steps)
            parts.append(f"{max(left, 0)} of {cap} steps")
        if usd:
            left, cap = min(usd)
            parts.append(f"${max(left, 0.0):.2f} of ${cap:.2f}")
        if tokens:
            left, cap = min(tokens)
            parts.append(f"{_short(max(left, 0))} of {_short(cap)} tokens")
        for name, quantity in (("CPU", cpu), ("GPU", gpu)):
            if quantity:
                left, cap = min(quantity)
                parts.append(f"{max(left, 0.0):.2f} of {cap:g} {name}-hours")
        wall = self.remaining_wall_s()
        if wall is not None:
            parts.append(f"{format_duration(wall)} of wall-clock")
        return "left: " + ", ".join(parts) if parts else "no budget limits"


def _short(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    return str(n)


