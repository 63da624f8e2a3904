"""``aarlab report RUN_DIR``: a self-contained HTML report and a markdown summary of one run.

The report reads the same data as the dashboard (``_data``) from the run's ``lab.db`` and its files, so it
shows the same numbers. It works on a finished, stopped or crashed run: a missing database, state file or
config leaves its sections empty, and a torn last transcript line is skipped. Everything is rendered
before anything is written, and each file is replaced atomically, so a failed report leaves no half file.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aarlab.dashboard import _content, _data, _results
from aarlab.dashboard import _runfiles as rf
from aarlab.dashboard._plots import render_plots
from aarlab.dashboard._render import env, static_text
from aarlab.errors import UserError
from aarlab.paths import atomic_write_text

BEST_METHODS = 3


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    plots: list[Path]


MAX_INLINE_PNG = 2_000_000


def _inline_pngs(paths: list[Path]) -> list[str]:
    """PNG files as data URIs, so the HTML stays one self-contained file."""
    import base64

    out = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if data.startswith(b"\x89PNG") and len(data) <= MAX_INLINE_PNG:
            out.append("data:image/png;base64," + base64.b64encode(data).decode())
    return out


def _best_methods(store, rows: list[_results.LeaderRow]) -> list[dict[str, Any]]:
    """The top results (verified first, else claimed) with their posts' descriptions."""
    ranked = [r for r in rows if not r.quarantined and (r.verified_pgr is not None or r.claimed_pgr is not None)]
    ranked.sort(key=lambda r: (r.verified_pgr is not None, r.verified_pgr if r.verified_pgr is not None
                               else r.claimed_pgr), reverse=True)
    out = []
    for row in ranked[:BEST_METHODS]:
        item = _content.post(store, row.post_id)
        if item is not None:
            out.append({"row": row, "post": item})
    return out


def report_context(store, run_dir: Path) -> dict[str, Any]:
    """Everything the report templates show."""
    ov = _data.overview(store, run_dir)
    # One leaderboard per registered task (the run's own first); with no task yet, one empty board.
    boards = [{"task": task, "baselines": _data.baselines(task), "rows": _results.leaderboard(store, task["id"], "verified")}
              for task in ov.tasks] or [{"task": None, "baselines": [], "rows": _results.leaderboard(store, None, "verified")}]
    rows = [row for board in boards for row in board["rows"]]
    flags, _ = _data.flags(store, status=None, limit=1000)
    return dict(
        ov=ov, boards=boards, rows=rows, baselines=boards[0]["baselines"], flags=flags,
        best=_best_methods(store, rows),
        plots=render_plots(store, run_dir), generalization=rf.read_generalization(run_dir),
        generalization_pngs=_inline_pngs(rf.generalization_plots(run_dir)),
        generated=time.time(), run_dir=str(run_dir), config=ov.config,
        total_cost=sum(a.cost_usd for a in ov.agents), total_tokens=sum(a.tokens for a in ov.agents),
    )


def build_report(run_dir: Path | str, out_dir: Path | str | None = None) -> ReportFiles:
    """Write ``report.html`` (plots inlined), ``report.md`` and ``plots/*.svg`` into ``out_dir``
    (default ``RUN_DIR/report``); returns their paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no such run directory: {run_dir}")
    if not any((run_dir / name).exists() for name in ("lab.db", "transcripts", "state.json", "config.yaml")):
        raise UserError(f"{run_dir} does not look like a run directory (no lab.db, transcripts/, state.json "
                        "or config.yaml)")
    out = Path(out_dir) if out_dir else run_dir / "report"
    with _open_run_store(run_dir) as store:
        context = report_context(store, run_dir)
    html = env().get_template("report.html").render(css=static_text("dashboard.css"), **context)
    markdown = env().get_template("report.md").render(**context)
    out.mkdir(parents=True, exist_ok=True)
    plot_paths = []
    for name, svg in context["plots"].items():
        path = out / "plots" / f"{name}.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, svg)
        plot_paths.append(path)
    atomic_write_text(out / "report.md", markdown)
    atomic_write_text(out / "report.html", html)
    return ReportFiles(html=out / "report.html", markdown=out / "report.md", plots=plot_paths)


class _open_run_store:
    """The run's own database, or an empty throwaway one when the run never got as far as creating it."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.store = None

    def __enter__(self):
        from aarlab.store import open_store

        if (self.run_dir / "lab.db").exists():
            self.store = open_store(run_dir=self.run_dir)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="aarlab-report-")
            self.store = open_store(db_url=str(Path(self._tmp.name) / "empty.db"))
        return self.store

    def __exit__(self, *exc) -> None:
        if self.store is not None:
            self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()
