"""Small server-side SVG charts: step lines over time and horizontal bars.

Hand-written SVG rather than matplotlib because a page must render in well under 200 ms with a large run
(matplotlib spends ~100 ms per figure), and because an inline ``<svg>`` is self-contained in the HTML
report with no data URI or font to embed. The charts are deliberately plain: axes, ticks, a legend.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# Colour-blind-safe palette (Okabe-Ito), repeated when there are more series than colours.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000", "#999999"]


@dataclass
class Series:
    """One line: ``points`` are ``(x, y)`` pairs sorted by x; ``dashed`` draws it dashed (e.g. claimed)."""

    label: str
    points: list[tuple[float, float]]
    color: str | None = None
    dashed: bool = False
    width: float = 1.6


@dataclass
class HLine:
    """A horizontal reference line (e.g. PGR 0 = weak teacher, 1 = strong ceiling)."""

    y: float
    label: str
    color: str = "#888"


@dataclass
class _Frame:
    width: int
    height: int
    left: int = 56
    right: int = 150
    top: int = 28
    bottom: int = 36
    parts: list[str] = field(default_factory=list)

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1-2-5 steps)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        if value >= lo - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.3g}"


def _time_label(seconds: float, span: float) -> str:
    if span > 2 * 86400:
        return time.strftime("%m-%d %H:%M", time.localtime(seconds))
    return time.strftime("%H:%M", time.localtime(seconds))


def _empty(title: str, width: int, height: int, message: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
        f'<text x="10" y="18" class="chart-title" font-size="13" font-weight="600">{escape(title)}</text>'
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#888" font-size="12">'
        f"{escape(message)}</text></svg>"
    )


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str = "",
    time_axis: bool = True,
    hlines: Sequence[HLine] = (),
    width: int = 720,
    height: int = 300,
    y_range: tuple[float, float] | None = None,
) -> str:
    """A step-line chart as an SVG string; x is unix time when ``time_axis`` (ticks show clock time)."""
    series = [s for s in series if s.points]
    if not series:
        return _empty(title, width, height, "no data yet")
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + [h.y for h in hlines]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_lo, y_hi = y_range if y_range else (min(ys), max(ys))
    if y_hi <= y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = (y_hi - y_lo) * 0.06
    y_lo, y_hi = (y_lo - pad, y_hi + pad) if not y_range else (y_lo, y_hi)
    f = _Frame(width, height)

    def sx(x: float) -> float:
        return f.left + (x - x_lo) / (x_hi - x_lo) * f.plot_w

    def sy(y: float) -> float:
        return f.top + (1 - (y - y_lo) / (y_hi - y_lo)) * f.plot_h

    out = f.parts
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'font-family="system-ui, sans-serif" font-size="11">'
    )
    out.append(f'<text x="{f.left}" y="16" font-size="13" font-weight="600">{escape(title)}</text>')
    for tick in nice_ticks(y_lo, y_hi):
        y = sy(tick)
        out.append(f'<line x1="{f.left}" x2="{f.left + f.plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{_fmt(tick)}</text>')
    span = x_hi - x_lo
    for tick in nice_ticks(x_lo, x_hi, 6) if not time_axis else _time_ticks(x_lo, x_hi):
        x = sx(tick)
        label = _time_label(tick, span) if time_axis else _fmt(tick)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.top}" y2="{f.top + f.plot_h:.1f}" stroke="#f3f3f3"/>')
        out.append(
            f'<text x="{x:.1f}" y="{f.top + f.plot_h + 14:.1f}" text-anchor="middle" fill="#555">{label}</text>'
        )
    out.append(
        f'<rect x="{f.left}" y="{f.top}" width="{f.plot_w:.1f}" height="{f.plot_h:.1f}" fill="none" stroke="#bbb"/>'
    )
    if y_label:
        out.append(
            f'<text transform="translate(14 {f.top + f.plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
            f'fill="#333">{escape(y_label)}</text>'
        )
    for h in hlines:
        if y_lo <= h.y <= y_hi:
            y = sy(h.y)
            out.append(
                f'<line x1="{f.left}" x2="{f.left + f.plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{h.color}" '
                f'stroke-dasharray="2 3"/><text x="{f.left + 4}" y="{y - 3:.1f}" fill="{h.color}">{escape(h.label)}</text>'
            )
    legend_y = f.top + 4
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        # Steps: a best-so-far value holds until the next point changes it, then runs to the right edge.
        coords: list[str] = []
        prev_y: float | None = None
        for x, y in s.points:
            if prev_y is not None:
                coords.append(f"{sx(x):.1f},{sy(prev_y):.1f}")
            coords.append(f"{sx(x):.1f},{sy(y):.1f}")
            prev_y = y
        if prev_y is not None:
            coords.append(f"{sx(x_hi):.1f},{sy(prev_y):.1f}")
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        out.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="{s.width}"{dash} points="{" ".join(coords)}">'
            f"<title>{escape(s.label)}</title></polyline>"
        )
        if len(s.points) <= 60:  # markers help read a few improvements; on a dense series they are noise
            for x, y in s.points:
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{color}"/>')
        lx = f.left + f.plot_w + 10
        out.append(
            f'<line x1="{lx}" x2="{lx + 18}" y1="{legend_y}" y2="{legend_y}" stroke="{color}" stroke-width="2"{dash}/>'
            f'<text x="{lx + 22}" y="{legend_y + 4}" fill="#333">{escape(_clip(s.label, 20))}</text>'
        )
        legend_y += 15
    out.append("</svg>")
    return "".join(out)


def _time_ticks(lo: float, hi: float) -> list[float]:
    span = hi - lo
    for step in (10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400):
        if span / step <= 7:
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) // step) + 1)]


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    x_label: str = "",
    width: int = 720,
    colors: Sequence[str] | None = None,
) -> str:
    """Horizontal bars, one per label (e.g. submissions per agent)."""
    if not bars:
        return _empty(title, width, 120, "no data yet")
    row = 22
    height = 40 + row * len(bars) + 24
    left = 140
    plot_w = width - left - 60
    hi = max(max(v for _, v in bars), 1e-9)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="11">',
        f'<text x="10" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(bars):
        y = 32 + i * row
        w = value / hi * plot_w
        color = (colors[i] if colors else None) or PALETTE[i % len(PALETTE)]
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" fill="#333">{escape(_clip(label, 22))}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{color}"/>')
        out.append(f'<text x="{left + w + 4:.1f}" y="{y + 14}" fill="#333">{_fmt(value)}</text>')
    if x_label:
        out.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#555">{escape(x_label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
