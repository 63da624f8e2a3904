"""The run's plots as inline SVG: best PGR over time (claimed and verified, per agent and team), spend over
time, submissions per agent. Rendered server-side and cached until the data they draw changes."""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aarlab.dashboard import _data, _results
from aarlab.dashboard._charts import PALETTE, HLine, Series, bar_chart, line_chart
from aarlab.dashboard._transcripts import _thin, file_signature, shared_index, transcript_files

TEAM_COLOR = "#000000"
_REF_LINES = (HLine(0.0, "weak (PGR 0)"), HLine(1.0, "ceiling (PGR 1)"))


def _colors(names: list[str]) -> dict[str, str]:
    # The team line is black; agents take the rest of the palette in a stable (sorted-name) order.
    palette = [c for c in PALETTE if c != TEAM_COLOR]
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(names))}


def _best_chart(title: str, per_agent: dict[str, list[tuple[float, float]]], colors: dict[str, str],
                dashed: bool) -> str:
    series = [Series(name, _results.best_so_far(points), color=colors.get(name), dashed=dashed)
              for name, points in sorted(per_agent.items())]
    team = _results.best_so_far([p for points in per_agent.values() for p in points])
    if team:
        series.append(Series("team best", team, color=TEAM_COLOR, width=2.8, dashed=dashed))
    return line_chart(series, title=title, y_label="PGR", hlines=_REF_LINES)


@dataclass
class _Spend:
    records: int = 0  # how many index records were folded in
    total: float = 0.0
    costs: list[tuple[float, float]] = field(default_factory=list)  # (time, $) per costed record
    cumulative: list[tuple[float, float]] = field(default_factory=list)  # (time, $ so far)


_SPEND: dict[Path, _Spend] = {}
_SPEND_LOCK = threading.Lock()


def _agent_spend(path: Path) -> _Spend:
    """One transcript's spend, extended with only the records appended since the last call."""
    metas = shared_index().records(path)
    with _SPEND_LOCK:
        spend = _SPEND.get(path)
        if spend is None or spend.records > len(metas):  # a new or replaced file
            spend = _SPEND[path] = _Spend()
        for meta in metas[spend.records:]:
            if meta.cost_usd and meta.time:
                spend.total += meta.cost_usd
                spend.costs.append((meta.time, meta.cost_usd))
                spend.cumulative.append((meta.time, spend.total))
        spend.records = len(metas)
        return spend


def spend_series(run_dir: Path | None) -> tuple[dict[str, list[tuple[float, float]]], list[tuple[float, float]]]:
    """Cumulative $ over time per agent and for the team, from the transcripts' per-turn costs."""
    spends = {agent: _agent_spend(path) for agent, path in transcript_files(run_dir).items()}
    per_agent = {agent: _thin(spend.cumulative) for agent, spend in spends.items()}
    return per_agent, _team_spend([spend.cumulative for spend in spends.values()])


def _team_spend(series: list[list[tuple[float, float]]], samples: int = 400) -> list[tuple[float, float]]:
    """The team's cumulative $ at ``samples`` evenly spaced times (plus the end): at each time, the sum of
    every agent's spend so far, found by bisection, so a long run costs samples x agents lookups."""
    series = [s for s in series if s]
    if not series:
        return []
    lo = min(s[0][0] for s in series)
    hi = max(s[-1][0] for s in series)
    times = [lo + (hi - lo) * i / samples for i in range(samples)] + [hi] if hi > lo else [lo]
    keys = [[when for when, _ in s] for s in series]
    out = []
    for when in times:
        total = 0.0
        for key, s in zip(keys, series, strict=True):
            i = bisect.bisect_right(key, when)
            if i:
                total += s[i - 1][1]
        out.append((when, total))
    return out


def render_plots(store, run_dir: Path | None) -> dict[str, str]:
    """``{name: svg}`` for every plot of the run (names: verified, claimed, public, spend, submissions)."""
    events = _results.pgr_events(store)
    names = sorted({a.name for a in _data.agents(store, run_dir)} | set(events["claimed"]) | set(events["verified"]))
    colors = _colors(names)
    per_agent_spend, team_spend = spend_series(run_dir)
    spend = [Series(name, points, color=colors.get(name)) for name, points in sorted(per_agent_spend.items())]
    if team_spend and len(per_agent_spend) > 1:
        spend.append(Series("team", team_spend, color=TEAM_COLOR, width=2.8))
    subs = _results.submissions_per_agent(store)
    return {
        "verified": _best_chart("Best verified PGR over time", events["verified"], colors, dashed=False),
        "claimed": _best_chart("Best claimed PGR over time (result posts)", events["claimed"], colors, dashed=True),
        "public": _best_chart("Best public PGR over time (submissions)", events["public"], colors, dashed=False),
        "spend": line_chart(spend, title="Spend over time", y_label="US$"),
        "submissions": bar_chart(subs, title="Submissions per agent", x_label="submissions",
                                 colors=[colors.get(name, PALETTE[0]) for name, _ in subs]),
    }


class PlotCache:
    """Keeps the last rendering and reuses it while the database and the transcripts are unchanged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._value: dict[str, str] = {}

    def get(self, store, run_dir: Path | None) -> dict[str, str]:
        key = (_data.data_signature(store),
               tuple((name, file_signature(path)) for name, path in transcript_files(run_dir).items()))
        with self._lock:
            if key == self._key:
                return self._value
        value = render_plots(store, run_dir)
        with self._lock:
            self._key, self._value = key, value
        return value
