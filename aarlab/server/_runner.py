"""``LabServer``: a real uvicorn serving the lab app in a background thread, for ``aarlab run`` and tests."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aarlab.errors import UserError
from aarlab.server._settings import ServerSettings, new_token

# (store, settings) -> the ASGI app to serve.
AppFactory = Callable[[Any, ServerSettings], Any]


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` with mode 0600 from the start (never readable by others, not even briefly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_or_create_secret(path: Path) -> str:
    """The secret in ``path`` (mode 0600), created with a fresh 256-bit token when missing."""
    path = Path(path)
    if path.is_file():
        secret = path.read_text().strip()
        if len(secret) >= 16:
            return secret
    secret = new_token()
    write_secret(path, secret)
    return secret


def read_or_create_admin_token(run_dir: Path) -> str:
    """``<run_dir>/admin_token`` (mode 0600), created with a fresh token when missing."""
    return read_or_create_secret(Path(run_dir) / "admin_token")


class LabServer:
    """Run the lab server on ``host:port`` (port 0 picks a free one) in a background thread.

    ``with LabServer(run_dir=d) as lab:`` starts it and stops it; ``lab.url``, ``lab.admin_token``,
    ``lab.store`` and ``lab.client()`` (an admin ``LabClient``) are then ready. Without explicit settings
    the admin token is read from (or written to) ``<run_dir>/admin_token``. ``app_factory(store, settings)``
    builds the app (default: the API alone; ``aarlab.app.create_lab_app`` adds the dashboard).
    """

    def __init__(self, run_dir: Path | str | None = None, db_url: str | None = None,
                 settings: ServerSettings | None = None, host: str = "127.0.0.1", port: int = 0,
                 tasks: tuple[Path | str, ...] | list[Path | str] = (), app_factory: AppFactory | None = None):
        if run_dir is None and db_url is None:
            raise UserError("LabServer needs a run directory or a database URL")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.db_url = db_url
        if settings is None:
            token = read_or_create_admin_token(self.run_dir) if self.run_dir is not None else new_token()
            settings = ServerSettings(admin_token=token, run_dir=self.run_dir)
        elif settings.run_dir is None and self.run_dir is not None:
            settings = settings.model_copy(update={"run_dir": self.run_dir})
        self.settings = settings
        self.host, self.port = host, port
        self.tasks = list(tasks)
        self.app_factory = app_factory
        self.store = None
        self.app = None
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def admin_token(self) -> str:
        return self.settings.admin_token

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, token: str | None = None):
        """A ``LabClient`` on this server (admin unless ``token`` is given)."""
        from aarlab.server.client import LabClient

        return LabClient(self.url, token or self.admin_token)

    def start(self, timeout: float = 30.0) -> LabServer:
        import uvicorn

        from aarlab.server._app import create_app
        from aarlab.store import open_store

        self.store = open_store(self.db_url, self.run_dir)
        self.app = (self.app_factory or create_app)(self.store, self.settings)
        for task_dir in self.tasks:
            self.app.state.lab.register_task(str(task_dir), None)
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
        # response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            self.store.close()
            raise UserError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=3,
                                lifespan="off", backlog=512)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"lab-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the lab server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.app is not None:
            self.app.state.shutting_down = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
