"""The Jinja2 environment shared by the live pages and the report, with the filters both use."""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def fmt_time(value: Any, seconds: bool = False) -> str:
    if not isinstance(value, int | float) or not value:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(value))


def fmt_ago(value: Any) -> str:
    if not isinstance(value, int | float) or not value:
        return "–"
    delta = time.time() - value
    if delta < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if delta >= size:
            return f"{delta / size:.0f} {unit} ago"
    return f"{delta:.0f} s ago"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; "–" for anything missing (None, undefined, NaN)."""
    return f"{value:.{digits}f}" if _is_number(value) else "–"


def fmt_pm(value: Any, se: Any = None, n: Any = None, digits: int = 3, step: Any = None) -> Markup:
    """``0.512 ± 0.031 (n=3)``: every PGR is shown with its standard error and seeds where known. With a coarse
    reply's PGR ``step``, an SE that rounds to 0 there reads ``± <step``: below the grid, not zero."""
    if not _is_number(value):
        return Markup('<span class="muted">–</span>')
    text = fmt_num(value, digits)
    from aarlab.server import below_grid

    if _is_number(se) and _is_number(step) and below_grid(se, step, digits):
        text += f" ± <{fmt_num(step, digits)}"
    elif _is_number(se):
        text += f" ± {fmt_num(se, digits)}"
    out = escape(text)
    if n:
        out += Markup(' <span class="muted">(n={})</span>').format(n)
    return Markup(out)


def fmt_usd(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def fmt_int(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else "–"


def fmt_bytes(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def short_id(value: Any, n: int = 10) -> str:
    return str(value)[:n] if value else ""


def clip(value: Any, n: int = 120) -> str:
    text = str(value or "")
    return text if len(text) <= n else text[: n - 1] + "…"


def slug(value: Any) -> str:
    """A CSS class fragment: ``stopped (process gone)`` → ``stopped--process-gone-``."""
    return "".join(c if c.isalnum() else "-" for c in str(value or ""))


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    # Raw HTML is off: post bodies are written by agents, and a page must not run what they write.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: Any) -> Markup:
    try:
        return Markup(_markdown().render(str(text or "")))
    except ImportError:
        return Markup("<pre class='wrap'>{}</pre>").format(str(text or ""))


def make_env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters.update(ts=fmt_time, ago=fmt_ago, num=fmt_num, usd=fmt_usd, int=fmt_int, bytes=fmt_bytes,
                       short=short_id, clip=clip, slug=slug, tojson_pretty=to_json, markdown=markdown)
    env.globals.update(pm=fmt_pm)
    return env


@lru_cache(maxsize=1)
def env() -> Environment:
    return make_env()


def static_text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")
