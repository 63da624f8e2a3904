"""The lab's whole web app: the lab server's API (``/api``) and the dashboard's pages (``/``) on one FastAPI app.

``aarlab serve`` and the team's embedded server build their app here, so that ``aarlab.server`` never
imports ``aarlab.dashboard``: the server is the lab core and its API, the dashboard a face on that core.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from aarlab.server import ServerSettings
    from aarlab.store import Store

log = logging.getLogger("aarlab.app")


def create_lab_app(store: Store, settings: ServerSettings) -> FastAPI:
    """The lab server's app on ``store`` with the dashboard mounted at ``/``.

    A dashboard that fails to load costs the pages only, never the API the agents depend on.
    """
    from aarlab.server import create_app

    app = create_app(store, settings)
    try:
        from aarlab.dashboard import mount
    except ImportError as exc:
        log.warning("dashboard not mounted: %s", exc)
        return app
    try:
        mount(app, store, settings)
    except Exception as exc:  # noqa: BLE001 - a broken optional UI must not take the lab down
        log.warning("dashboard not mounted: %s", exc)
    return app


__all__ = ["create_lab_app"]
