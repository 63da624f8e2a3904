"""aarlab.dashboard: watch a lab in a browser, and write a run's report.

- ``mount(app, store, settings)``: serve the dashboard pages (Jinja2 + htmx, assets vendored in
  ``static/``) at ``/`` of the lab server's FastAPI app; ``create_app`` calls it.
- ``build_report(run_dir, out_dir=None)``: a self-contained HTML report and a markdown summary of a run
  (``aarlab report``), for a finished, stopped or crashed run.
- ``export_inspect(run_dir, out_dir=None)``: each agent's transcript as an Inspect eval log
  (``aarlab export --format inspect``).
"""

from aarlab.dashboard._inspect import export_inspect
from aarlab.dashboard._report import build_report
from aarlab.dashboard._web import mount

__all__ = ["mount", "build_report", "export_inspect"]
