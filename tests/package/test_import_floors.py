"""Layers import one way, bottom up, and no module imports itself round a circle.

Every ``import`` and ``from ... import`` statement of every module under ``src/attnlab`` is
read with ``ast``, including the ones inside functions (they still tie two modules), and
checked against the floors of docs/ARCHITECTURE.md: a module may import its own floor and the
floors below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "attnlab"

# Bottom up. Modules directly under attnlab/ are named by their file; attnlab/__init__ is the
# package itself, above every floor.
FLOORS = {
    "specials": 0,
    "choices": 0,
    "ops": 1,
    "nn": 2,
    "metrics": 3,
    "data": 4,
    "decode": 5,
    "nat": 6,
    "train": 7,
    "baselines": 7,
    "analysis": 8,
    "sweeps": 8,
    "inference": 8,
    "": 9,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def floor_of(module: str) -> int:
    parts = module.split(".")
    return FLOORS[parts[1] if len(parts) > 1 else ""]


def import_statements(module: str) -> list[tuple[ast.stmt, bool]]:
    """Every import statement of ``module`` and whether it sits inside a function."""
    tree = ast.parse(MODULES[module].read_text())
    inside = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(fn)
    }
    return [
        (node, id(node) in inside)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]


def attnlab_targets(node: ast.stmt) -> list[str]:
    """The attnlab modules an import statement loads (``from a.b import c``: a.b.c if c is a
    module, else a.b)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert node.level == 0, "attnlab uses absolute imports only"
        names = [
            f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
            for a in node.names
        ]
    return [n for n in names if n in MODULES]


def imported_modules(module: str) -> dict[str, int]:
    """Every attnlab module that ``module`` imports -> the first line that imports it."""
    found: dict[str, int] = {}
    for node, _ in import_statements(module):
        for target in attnlab_targets(node):
            if target != module:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {module: imported_modules(module) for module in MODULES}


def test_every_module_has_a_floor():
    unplaced = sorted({m.split(".")[1] for m in MODULES if "." in m} - set(FLOORS))
    assert not unplaced, f"give these a floor in FLOORS and in docs/ARCHITECTURE.md: {unplaced}"


def test_no_module_imports_from_a_higher_floor():
    upward = [
        f"{MODULES[m].relative_to(SRC)}:{line} imports {target}"
        for m, targets in GRAPH.items()
        for target, line in targets.items()
        if floor_of(target) > floor_of(m)
    ]
    assert not upward, "\n".join(upward)


def test_attnlab_modules_are_imported_at_module_level():
    """A function-local import of one of our modules would hide an edge between floors.

    Function-local imports remain only for heavy optional libraries, each with its reason.
    """
    hidden = [
        f"{MODULES[m].relative_to(SRC)}:{node.lineno} imports {', '.join(attnlab_targets(node))}"
        for m in MODULES
        if m != "attnlab"  # the package itself: attnlab.load imports on first use (see there)
        for node, in_function in import_statements(m)
        if in_function and attnlab_targets(node)
    ]
    assert not hidden, "\n".join(hidden)


def test_ops_imports_nothing_from_attnlab():
    assert not {
        t
        for m, ts in GRAPH.items()
        if m.startswith("attnlab.ops")
        for t in ts
        if not t.startswith("attnlab.ops")
    }


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in graph:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize(
    ("graph", "has_cycle"),
    [
        ({"a": {"b": 1}, "b": {"c": 1}, "c": {}}, False),
        ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}, True),
        ({"a": {"a": 1}}, True),
    ],
)
def test_the_cycle_finder_finds_cycles(graph, has_cycle):
    assert (find_cycle(graph) is not None) == has_cycle
