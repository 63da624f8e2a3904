"""Where aarlab keeps things on disk: a user cache for downloaded datasets, and run directories."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache directory (``$AARLAB_CACHE`` overrides ``~/.cache/aarlab``)."""
    if env := os.environ.get("AARLAB_CACHE"):
        path = Path(env)
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("aarlab"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
