"""streamline_core keeps its shape: no import cycle (counting every import) and small modules.

The import-linter ``layers`` contracts in pyproject.toml fix the order of the
layers; this test is the backstop that needs no list: it reads every module,
counts every import of another streamline_core module (``TYPE_CHECKING`` and
function-local ones too: a module that names another for its types still
depends on it), and fails on any cycle or on a module over the line budget.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "streamline_core"
MAX_LINES = 400


def _name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(path: Path, modules: set[str]) -> set[str]:
    here = _name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                # `from pkg import sub` depends on the submodule, not on pkg's __init__.
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in modules else module)
    return {m for m in found if m in modules and m != _name(path)}


def _graph() -> dict[str, set[str]]:
    paths = sorted(CORE.rglob("*.py"))
    modules = {_name(p) for p in paths}
    return {_name(p): _targets(p, modules) for p in paths}


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A path start -> ... -> start, if there is one (depth-first, iterative)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_module_of_streamline_core_is_part_of_an_import_cycle() -> None:
    graph = _graph()
    # The package __init__ re-exports the public names: it imports everything
    # and nothing below may import it back, which the search below also checks.
    cycles = [c for m in graph if (c := _cycle_from(m, graph)) is not None]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_of_streamline_core_is_over_the_line_budget() -> None:
    long = {
        _name(p): n
        for p in CORE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_parts_never_import_the_facade() -> None:
    facade = {"streamline_core.engine", "streamline_core.workflow", "streamline_core.runs"}
    graph = _graph()
    offenders = {
        m: sorted(graph[m] & facade)
        for m in graph
        if ".".join(m.split(".")[:2]) == "streamline_core._runtime" and graph[m] & facade
    }
    assert not offenders, offenders


def test_the_shape_check_sees_a_cycle_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle_from("a", graph) == ["a", "b", "c", "a"]
    assert _cycle_from("d", graph) is None
