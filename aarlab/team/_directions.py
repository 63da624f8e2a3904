"""Research directions: the prompt text that makes each researcher of a team look somewhere different.

The nine directions of the study ship as Markdown files in ``aarlab/team/directions/``; a run config may name
them, point at a file of its own, or give the text inline. Directions are handed out round-robin, so a team of
nine covers all nine and a team of three covers the first three. ``homogeneous`` gives everyone the same
general brief (the study's ablation: does diversity of directions matter?).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aarlab.errors import UserError

# The study's order: the first agents of a small team get the directions that differ most from each other.
BUILTIN_DIRECTIONS: tuple[str, ...] = (
    "unsupervised-elicitation",
    "data-reweighting",
    "noisy-channel-em",
    "distillation",
    "w2s-plus-elicitation",
    "simplicity-bias",
    "learnability-selection",
    "evolutionary-search",
    "interpretability",
)
HOMOGENEOUS_DIRECTION = "general"


@dataclass(frozen=True)
class Direction:
    """One research direction: a short ``name`` (shown in the UI), a ``title`` and the prompt ``text``."""

    name: str
    title: str
    text: str


def _from_markdown(name: str, text: str) -> Direction:
    text = text.strip()
    first, _, rest = text.partition("\n")
    if first.startswith("# "):
        return Direction(name=name, title=first[2:].strip(), text=text)
    return Direction(name=name, title=first.strip()[:80], text=text)


def builtin_direction(name: str) -> Direction:
    """A direction shipped with aarlab, by file name without ``.md``."""
    known = (*BUILTIN_DIRECTIONS, HOMOGENEOUS_DIRECTION)
    if name not in known:
        raise UserError(f"unknown direction {name!r}; built-in directions are: {', '.join(known)}")
    text = resources.files("aarlab.team").joinpath("directions", f"{name}.md").read_text(encoding="utf-8")
    return _from_markdown(name, text)


def builtin_directions() -> list[Direction]:
    """The nine directions of the study, in the order they are handed out."""
    return [builtin_direction(name) for name in BUILTIN_DIRECTIONS]


def load_direction(spec: str, base_dir: Path | None = None) -> Direction:
    """Resolve a direction given in a config: a built-in name, a path to a text/Markdown file, or the text itself.

    A relative path is looked up next to the config file (``base_dir``) first, then in the current directory.
    Anything with a newline or more than a few words is taken as inline text.
    """
    spec = spec.strip()
    if not spec:
        raise UserError("a direction is empty")
    if spec in BUILTIN_DIRECTIONS or spec == HOMOGENEOUS_DIRECTION:
        return builtin_direction(spec)
    looks_like_path = "\n" not in spec and (spec.endswith((".md", ".txt")) or "/" in spec) and len(spec.split()) == 1
    if looks_like_path:
        candidates = [Path(spec).expanduser()]
        if base_dir is not None and not Path(spec).is_absolute():
            candidates.insert(0, base_dir / spec)
        for path in candidates:
            if path.is_file():
                try:
                    return _from_markdown(path.stem, path.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError) as exc:
                    raise UserError(f"cannot read direction file {path}: {exc}") from None
        raise UserError(f"direction file {spec} does not exist")
    if len(spec.split()) < 3:
        raise UserError(
            f"direction {spec!r} is neither a built-in direction ({', '.join(BUILTIN_DIRECTIONS)}), "
            "a file, nor a research brief of a few words"
        )
    words = "-".join(w.lower() for w in spec.split()[:4] if w.isalnum())
    return _from_markdown(words or "custom", spec)


def assign_directions(n_agents: int, specs: list[str] | None = None, homogeneous: bool = False,
                      base_dir: Path | None = None) -> list[Direction]:
    """The direction of each of ``n_agents`` researchers: round-robin over ``specs`` (default: the nine)."""
    if homogeneous:
        direction = load_direction(specs[0], base_dir) if specs else builtin_direction(HOMOGENEOUS_DIRECTION)
        return [direction] * n_agents
    pool = [load_direction(s, base_dir) for s in specs] if specs else builtin_directions()
    return [pool[i % len(pool)] for i in range(n_agents)]
