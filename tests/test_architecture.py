"""The package import graph points one way: no cycles between packages, no edge from a lower layer to a higher
one (the layers are listed in docs/ARCHITECTURE.md, "Layers"), and no import of another package's private
module. Every import counts, those inside functions and under ``TYPE_CHECKING`` included, since a lazy import
is still a dependency."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "aarlab"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

# Exceptions to the rules below, each with the reason it is still needed (test_allowed_exceptions_are_still_needed
# fails on one that no longer is, so these lists only shrink). None are left: keep them empty.
ALLOWED_BACK_EDGES: set[tuple[str, str]] = set()
ALLOWED_PRIVATE_IMPORTS: set[tuple[str, str]] = set()


def unit_of(path: Path) -> str:
    """The package a file belongs to: ``aarlab/agent/x.py`` → ``agent``; ``aarlab/config.py`` → ``config``;
    ``aarlab/__init__.py`` → ``aarlab`` (the root, which holds only the version)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if len(parts) == 1:
        return "aarlab" if parts[0] == "__init__" else parts[0]
    return parts[0]


def units() -> set[str]:
    return {unit_of(p) for p in PACKAGE.rglob("*.py")}


def imports() -> list[tuple[str, int, str]]:
    """Every ``(file, line, module)`` import of an ``aarlab`` module in the package (absolute imports; the
    code base uses no relative ones, which this checks too)."""
    found = []
    known = units()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{rel}:{node.lineno}: use absolute imports"
                if node.module == "aarlab":
                    # ``from aarlab import config`` names a unit; ``from aarlab import __version__`` the root.
                    found += [(rel, node.lineno, f"aarlab.{a.name}" if a.name in known else "aarlab")
                              for a in node.names]
                elif node.module and node.module.startswith("aarlab."):
                    # ``from aarlab.w2s.datasets import _bigbench`` reaches a private module (or name) too.
                    found += [(rel, node.lineno, f"{node.module}.{a.name}" if a.name.startswith("_") else node.module)
                              for a in node.names]
            elif isinstance(node, ast.Import):
                found += [(rel, node.lineno, a.name) for a in node.names if a.name.startswith("aarlab.")]
    return found


def package_graph() -> dict[str, dict[str, list[str]]]:
    """``{importer: {imported: [where, ...]}}`` between units, self-edges left out."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for rel, line, module in imports():
        source = unit_of(ROOT / rel)
        target = module.split(".")[1] if "." in module else "aarlab"
        if target != source:
            graph[source][target].append(f"{rel}:{line}")
    return graph


def documented_layers() -> list[set[str]]:
    """The numbered list under "## Layers" in docs/ARCHITECTURE.md, lowest first: ``1. `errors`, `paths` ...``."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    layers = [set(re.findall(r"`([\w.]+)`", line.split("—")[0]))
              for line in section.splitlines() if re.match(r"\d+\. ", line)]
    return [{name.removeprefix("aarlab.") for name in layer} for layer in layers]


def private_imports() -> list[tuple[str, int, str]]:
    """Imports of a module whose path, below another unit, has a part starting with ``_``."""
    out = []
    for rel, line, module in imports():
        parts = module.split(".")
        if len(parts) > 2 and parts[1] != unit_of(ROOT / rel) and any(p.startswith("_") for p in parts[2:]):
            out.append((rel, line, module))
    return out


def test_every_package_has_a_layer():
    layers = documented_layers()
    placed = [name for layer in layers for name in layer]
    assert len(placed) == len(set(placed)), f"a package is in two layers: {placed}"
    assert set(placed) == units(), (f"docs/ARCHITECTURE.md's layers miss {sorted(units() - set(placed))} or "
                                    f"name what does not exist: {sorted(set(placed) - units())}")


def test_imports_point_only_to_lower_layers():
    level = {name: i for i, layer in enumerate(documented_layers()) for name in layer}
    wrong = [f"{source} (layer {level[source] + 1}) imports {target} (layer {level[target] + 1}) at {where[0]}"
             for source, targets in package_graph().items() for target, where in targets.items()
             if level[target] >= level[source] and (source, target) not in ALLOWED_BACK_EDGES]
    assert not wrong, "imports that do not point to a lower layer:\n" + "\n".join(wrong)


def test_packages_import_each_other_without_cycles():
    graph = {source: {t for t in targets if (source, t) not in ALLOWED_BACK_EDGES}
             for source, targets in package_graph().items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import cycle between packages: " + " → ".join(path[path.index(node):] + [node]))
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            visit(target, path + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_no_import_of_another_packages_private_module():
    found = [f"{rel}:{line}: {module}" for rel, line, module in private_imports()
             if (rel, module) not in ALLOWED_PRIVATE_IMPORTS]
    assert not found, "import the name from the package's __init__ instead:\n" + "\n".join(found)


def test_allowed_exceptions_are_still_needed():
    graph = package_graph()
    stale = [f"{s} → {t}" for s, t in ALLOWED_BACK_EDGES if t not in graph.get(s, {})]
    present = {(rel, module) for rel, _, module in private_imports()}
    stale += [f"{rel}: {module}" for rel, module in ALLOWED_PRIVATE_IMPORTS if (rel, module) not in present]
    assert not stale, "fixed: remove these from the allowed exceptions in this file:\n" + "\n".join(stale)


def test_the_model_providers_never_import_the_team():
    # The demo researcher reaches aarlab.llm through the aarlab.scripts entry point or team's registration.
    assert "team" not in package_graph().get("llm", {})
    assert "team" not in package_graph().get("dashboard", {})
