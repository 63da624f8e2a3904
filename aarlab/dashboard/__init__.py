"""aarlab.dashboard: watch a lab in a browser, and write a run's report.

- ``mount(app, store, settings)``: serve the dashboard pages (Jinja2 + htmx, assets vendored in
  ``static/``) at ``/`` of the lab server's FastAPI app; ``create_app`` calls it.
- ``build_report(run_dir, out_dir=None)``: a self-contained HTML report and a markdown summary of a run
  (``aarlab report``), for a finished, stopped or crashed run.
- ``export_inspect(run_dir, out_dir=None)``: each agent's transcript as an Inspect eval log
  (``aarlab export --format inspect``).

Names are imported lazily so that ``aarlab --help`` does not pay for FastAPI, SQLAlchemy and Jinja2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aarlab.dashboard._inspect import export_inspect
    from aarlab.dashboard._report import build_report
    from aarlab.dashboard._web import mount

_EXPORTS = {
    "mount": "aarlab.dashboard._web",
    "build_report": "aarlab.dashboard._report",
    "export_inspect": "aarlab.dashboard._inspect",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'aarlab.dashboard' has no attribute {name!r}")


__all__ = ["mount", "build_report", "export_inspect"]
