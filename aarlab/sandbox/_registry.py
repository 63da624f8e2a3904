"""Finding backends by name: ``create``, ``available_backends``, ``check_backend``, ``default_backend``."""

from __future__ import annotations

import importlib
import sys

from aarlab.errors import UserError
from aarlab.sandbox._base import Sandbox, SandboxSpec, registered_backends

# backend name -> module that registers it (imported on first use, so optional stacks stay unloaded)
BACKEND_MODULES = {
    "bwrap": "aarlab.sandbox._bwrap",
    "process": "aarlab.sandbox._process",
    "docker": "aarlab.sandbox._docker",
    "ray": "aarlab.sandbox._ray",
}


def _backend_class(name: str):
    if name not in BACKEND_MODULES and name not in registered_backends():
        known = ", ".join(sorted(set(BACKEND_MODULES) | set(registered_backends())))
        raise UserError(f"unknown sandbox backend {name!r} (known: {known})")
    if name not in registered_backends():
        try:
            importlib.import_module(BACKEND_MODULES[name])
        except ImportError as exc:
            raise UserError(f"sandbox backend {name!r} cannot be loaded: {exc}") from exc
    return registered_backends()[name]


def create(backend: str, spec: SandboxSpec) -> Sandbox:
    """A new (not yet started) sandbox of the named backend: ``bwrap``, ``process``, ``docker`` or ``ray``."""
    return _backend_class(backend)(spec)


def check_backend(name: str) -> tuple[bool, str]:
    """Whether a backend can run here, and why (not): ``(True, "bubblewrap works …")``."""
    try:
        cls = _backend_class(name)
    except UserError as exc:
        return False, str(exc)
    check = getattr(cls, "check", None)
    if check is None:
        return True, "no self-check"
    try:
        return check()
    except Exception as exc:  # a broken environment is a "no", with its reason, not a crash
        return False, f"{type(exc).__name__}: {exc}"


def available_backends() -> list[str]:
    """The backends that work on this machine, best first."""
    return [name for name in ("bwrap", "docker", "ray", "process") if check_backend(name)[0]]


def default_backend() -> str:
    """``bwrap`` where it works (Linux with bubblewrap), else a UserError saying how to get isolation.

    ``process`` is never chosen silently: a run config must ask for it.
    """
    ok, reason = check_backend("bwrap")
    if ok:
        return "bwrap"
    hint = "install bubblewrap" if sys.platform.startswith("linux") else "use docker"
    raise UserError(f"no isolating sandbox here: {reason}. {hint}, or opt into 'process' (no isolation) explicitly")
