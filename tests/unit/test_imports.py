"""No import cycles between the modules of ``src/taskqueue``.

The graph is read from the source with ``ast``: every ``import`` statement counts, wherever it
is (module level, under ``if TYPE_CHECKING:``, inside a function), because a cycle that only
works thanks to a lazy or type-only import is still two modules that cannot be understood, or
moved, one without the other.

Edges:

* ``import a.b.c`` is an edge to ``a.b.c`` (or to the longest prefix of it that is a module);
* ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``
  (the package's ``__init__``, which is then really what is imported);
* importing ``pkg.sub`` is not also an edge to ``pkg``: Python runs ``pkg/__init__.py``
  first, but counting that would make every package whose ``__init__`` re-exports its
  submodules cyclic. A submodule that imports names from its own package's ``__init__``
  (``from pkg import Name`` inside ``pkg/sub.py``) is an explicit edge, and is caught.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import taskqueue

ROOT = Path(taskqueue.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = ["taskqueue", *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module of the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the package that module ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            targets = []
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.append(submodule if submodule in known else source)
        else:
            continue
        for target in targets:
            resolved = _resolve(target, known)
            if resolved is not None and resolved != name:
                found.add(resolved)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def strongly_connected(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0

    def visit(node: str) -> Iterator[list[str]]:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                yield from visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                yield sorted(component)

    for node in sorted(graph):
        if node not in index:
            yield from visit(node)


def a_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the first module of ``component``, as a path that ends where it began."""
    members = set(component)
    start = component[0]
    path = [start]
    seen = {start}

    def walk(node: str) -> bool:
        for target in sorted(graph[node] & members):
            if target == start:
                path.append(start)
                return True
            if target not in seen:
                seen.add(target)
                path.append(target)
                if walk(target):
                    return True
                path.pop()
        return False

    walk(start)
    return path


def test_the_graph_sees_what_the_modules_import() -> None:
    graph = import_graph()
    # A plain import, a from-import of a module, and one of a name from a package.
    assert "taskqueue.worker.settings" in graph["taskqueue.worker.upkeep"]
    assert "taskqueue.worker.settings" in graph["taskqueue.worker"]
    assert "taskqueue.store" in graph["taskqueue.worker.worker"]
    # Imports inside functions count too (the CLI imports the server side lazily).
    assert "taskqueue.store" in graph["taskqueue.cli.main"]


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    [component] = strongly_connected(graph)
    assert component == ["a", "b", "c"]
    assert a_cycle(graph, component) == ["a", "b", "c", "a"]


def test_no_import_cycles_between_modules() -> None:
    graph = import_graph()
    cycles = [" -> ".join(a_cycle(graph, component)) for component in strongly_connected(graph)]
    assert not cycles, "import cycles in src/taskqueue:\n" + "\n".join(cycles)
