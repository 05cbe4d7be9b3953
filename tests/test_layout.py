"""The code's layout keeps its promises: packages are real, nothing imports in a circle.

Read from the source (every ``import`` statement, including those inside functions and under
``TYPE_CHECKING``), not from what happens to be imported at run time:

- no import circle among the project's modules;
- a ``_``-module is private to its package: nothing outside that package imports it;
- inside a package, a module imports its siblings directly, never through the package's own
  ``__init__`` (which would be a circle the moment the ``__init__`` re-exports that module);
- ``edge`` and ``cloud`` never import each other: their one contract is ``wire``;
- every package's ``__init__`` says its one job in a docstring.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("wire", "edge", "cloud", "simulators", "hazwatch")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for top in PACKAGES for path in sorted((ROOT / top).rglob("*.py"))
    }


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """The project modules ``name`` imports (``from pkg import submodule`` counts the submodule)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        yield from (target for target in targets if target in MODULES)


GRAPH = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in GRAPH[node]:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    """The package a module belongs to (a package ``__init__`` belongs to itself)."""
    is_package = MODULES[module].name == "__init__.py"
    return module if is_package else module.rpartition(".")[0]


def test_no_import_circles() -> None:
    assert _cycles() == []


def test_private_modules_stay_inside_their_package() -> None:
    leaks = [
        f"{importer} imports {target}"
        for importer, targets in GRAPH.items()
        for target in targets
        if target.rpartition(".")[2].startswith("_")
        and not (importer + ".").startswith(target.rpartition(".")[0] + ".")
    ]
    assert leaks == []


def test_modules_import_siblings_not_their_own_package() -> None:
    through_init = [
        f"{module} imports its own package {target}"
        for module, targets in GRAPH.items()
        if MODULES[module].name != "__init__.py"
        for target in targets
        if target == _package(module)
        and GRAPH[target]  # an __init__ holding only constants is fine
    ]
    assert through_init == []


@pytest.mark.parametrize(("side", "other"), [("edge", "cloud"), ("cloud", "edge")])
def test_edge_and_cloud_share_only_wire(side: str, other: str) -> None:
    crossing = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] == side
        for target in targets
        if target.split(".")[0] == other
    ]
    assert crossing == []


def test_every_package_says_its_job() -> None:
    silent = [
        name
        for name, path in MODULES.items()
        if path.name == "__init__.py" and not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert silent == []


def test_the_checker_sees_a_circle(tmp_path: Path) -> None:
    """The graph walk itself: a circle through a ``TYPE_CHECKING`` import is still a circle."""
    global GRAPH
    saved = GRAPH
    try:
        GRAPH = {"a": ["b"], "b": ["a"], "c": ["a"]}
        assert _cycles() == [["a", "b"]]
    finally:
        GRAPH = saved
