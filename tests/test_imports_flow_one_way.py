"""The house's layers, read from the imports of every module (imports inside functions too):

    lakeport.settings                      the ground: imports nothing of Lakeport's
    ingestion, capture, lake, quality      libraries: settings and each other, never an adapter or a dev tool
    cli, dagster_project                   adapters on top (the CLI may start dev tools; Dagster may not)
    lakeport.dev                           the developer's machine, apart: never imported by a library

No two modules import each other, nor any longer circle; the ingestion stages never import each
other; and nothing imports a library by a bare top-level name (``import lake``), which would load a
second copy of it beside ``lakeport.lake``.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from helpers import ROOT

LIBRARIES = ("ingestion", "capture", "lake", "quality")
STAGES = ("source", "decode", "guard", "batch", "writer", "offsets", "dead_letters")
FORBIDDEN = {
    "settings": {"ingestion", "capture", "lake", "quality", "cli", "dagster_project", "dev"},
    **{library: {"cli", "dagster_project", "dev"} for library in LIBRARIES},
    "dagster_project": {"cli", "dev"},
    "dev": {"cli", "dagster_project"},
    "cli": {"dagster_project"},
}
BARE = (*LIBRARIES, "dagster_project")


def _modules() -> dict[str, Path]:
    """Every module of the namespace, by dotted name (through the links to the top-level folders)."""
    found = {}
    paths = [Path(d, f) for d, _, files in os.walk(ROOT / "lakeport", followlinks=True) for f in files]
    for path in sorted(p for p in paths if p.suffix == ".py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The Lakeport modules ``name`` imports: ``from pkg import sub`` counts as the submodule."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {t for t in targets if t in modules or t.split(".")[0] in BARE}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lakeport"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_each_layer_imports_only_what_lies_below_it() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) in FORBIDDEN.get(_layer(module), set())
    ]
    assert not wrong, "imports that run back up (or into the dev tools):\n" + "\n".join(sorted(wrong))


def test_no_module_is_imported_by_bare_library_name() -> None:
    """``import lake`` would load the same files a second time, as another module."""
    sources = [*_modules().values(), *(p for d in ("tests", "benchmarks", "scripts") for p in (ROOT / d).rglob("*.py"))]
    bare = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            bare += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in BARE]
    assert not bare, "\n".join(bare)


def test_no_two_modules_import_each_other_nor_any_circle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan: strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_the_ingestion_stages_never_import_each_other() -> None:
    graph = _graph()
    stages = {f"lakeport.ingestion.{s}" for s in STAGES}
    crossing = [f"{m} imports {t}" for m in stages for t in graph[m] if t in stages]
    assert not crossing, "\n".join(crossing)


def test_the_check_sees_the_whole_house() -> None:
    """Guards the guard: the links are followed, so every layer has modules and arrows to read."""
    graph = _graph()
    layers = {_layer(m) for m in graph}
    assert {*LIBRARIES, "settings", "cli", "dagster_project", "dev"} <= layers
    assert "lakeport.settings" in graph["lakeport.lake.tables"]
    assert "lakeport.ingestion.records" in graph["lakeport.ingestion.worker"]
