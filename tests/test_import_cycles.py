"""The inferedge package has no import cycles between its modules.

import-linter's `acyclic_siblings` contract (pyproject.toml) checks cycles between sibling
packages; this test also catches a module that imports its own package's `__init__` while that
imports it back. Every import counts: top-level, inside functions and under `TYPE_CHECKING`,
since a cycle deferred into a function is still two modules that cannot be understood apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grimp


def strongly_connected(
    nodes: Iterable[str], successors: Callable[[str], Iterable[str]]
) -> list[list[str]]:
    """Tarjan's strongly connected components of a directed graph, each one sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(successors(node)):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            components.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return components


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The import cycles of `graph`: components of two or more modules, or a self-import."""
    return [
        component
        for component in strongly_connected(graph.modules, graph.find_modules_directly_imported_by)
        if len(component) > 1
        or component[0] in graph.find_modules_directly_imported_by(component[0])
    ]


def describe(graph: grimp.ImportGraph, component: list[str]) -> str:
    """The imports that tie one cycle together, with their lines, one per line."""
    members = set(component)
    lines = []
    for importer in component:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            details = graph.get_import_details(importer=importer, imported=imported)
            where = ", ".join(str(d["line_number"]) for d in details)
            lines.append(f"  {importer} -> {imported} (line {where})")
    return "\n".join(lines)


def test_cycles_are_found_and_named_with_their_lines() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.d", "p.a")):
        graph.add_import(
            importer=importer, imported=imported, line_number=7, line_contents=f"import {imported}"
        )
    graph.add_import(importer="p.e", imported="p.e", line_number=3, line_contents="import p.e")
    graph.add_module("p.f")
    assert cycles(graph) == [["p.a", "p.b", "p.c"], ["p.e"]]
    assert describe(graph, ["p.a", "p.b", "p.c"]).splitlines() == [
        "  p.a -> p.b (line 7)",
        "  p.b -> p.c (line 7)",
        "  p.c -> p.a (line 7)",
    ]


def test_the_package_has_no_import_cycles() -> None:
    graph = grimp.build_graph("inferedge", cache_dir=None)
    assert len(graph.modules) > 100  # the whole package was scanned, not a stub
    found = cycles(graph)
    assert not found, "import cycles in inferedge:\n" + "\n\n".join(
        describe(graph, component) for component in found
    )
