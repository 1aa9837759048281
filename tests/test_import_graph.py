"""The house rules, read off the installed package's source: one `cairn` namespace, no
import cycles, imports that point down (tui -> app -> engine, engine rooms lowest first),
no web or UI library in the engine, and rooms and modules of a readable size.

Every import counts: module level, inside functions (a "late" import that dodges a
cycle at run time is still a cycle in the design) and under TYPE_CHECKING.
"""
from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Engine rooms, lowest first: a room may import from itself and the rooms before it.
ENGINE_ROOMS = (
    "cairn.engine.errors",
    "cairn.engine.store",
    "cairn.engine.query",
    "cairn.engine.tracking",
    "cairn.engine.loggedmodels",
    "cairn.engine.models",
    "cairn.engine.registry",
    "cairn.engine.endpoints",
    "cairn.engine.features",
    "cairn.engine.monitoring",
    "cairn.engine.governance",
    "cairn.engine.datadir",
    "cairn.engine",  # the package's own __init__: re-exports open/Engine/CairnError
    "cairn.engine.sdk",
    "cairn.engine.bundles",
)
# Above the engine: who may import whom (besides itself and every engine room).
LAYERS = {
    "face": set(),  # `import cairn`, cairn.sklearn: the SDK face
    "app": set(),
    "tui": {"app"},
    "cli": {"face", "app", "tui"},  # the composition root: `cairn up` runs server and UI
}
# Libraries a layer must never import (DESIGN.md: the engine is neither web nor UI).
FORBIDDEN_LIBS = {
    "engine": {"litestar", "uvicorn", "starlette", "textual", "rich", "httpx"},
    "face": {"litestar", "uvicorn", "textual"},
    "app": {"textual"},
}
# The design card's top-level folders install under `cairn`; their old top-level names
# must not be imported anywhere (with the checkout on sys.path they would still resolve,
# and load a second copy of every module).
OLD_TOP_LEVEL = {"engine", "app", "tui", "cli"}
MAX_ROOM_MODULES = 12
MAX_MODULE_LINES = 620  # "about 600"


def _package_dirs() -> dict[str, Path]:
    """Where the installed `cairn` packages live (an editable install maps them onto the
    checkout's folders; a wheel install onto site-packages)."""
    out = {}
    for name in ("cairn", "cairn.engine", "cairn.app", "cairn.tui", "cairn.cli"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, f"{name} is not installed as a package"
        out[name] = Path(next(iter(spec.submodule_search_locations)))
    return out


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    dirs = _package_dirs()
    for pkg, root in dirs.items():
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("").parts
            if pkg == "cairn" and rel and rel[0] in {"engine", "app", "tui", "cli"}:
                continue  # never there, but a stray copy must not count twice
            parts = [pkg, *rel]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(absolute imported name, line) for every import in the file; `from X import y`
    yields X.y when that is a module, else X."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: None if is_pkg else -1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            yield from ((n, node.lineno) for n in names)
            if len(names) < len(node.names):
                yield target, node.lineno


def _owner(name: str) -> str | None:
    """The project module an imported name lives in (a name inside a module -> it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        deps = {_owner(name) for name, _ in _imports(mod, path)}
        graph[mod] = {d for d in deps if d and d != mod}
    return graph


def _layer(mod: str) -> tuple[str, int]:
    """('engine', room index) or (layer name, -1)."""
    if mod == "cairn.engine" or mod.startswith("cairn.engine."):
        best = max((r for r in ENGINE_ROOMS if mod == r or mod.startswith(r + ".")), key=len)
        return "engine", ENGINE_ROOMS.index(best)
    for layer in ("app", "tui", "cli"):
        if mod == f"cairn.{layer}" or mod.startswith(f"cairn.{layer}."):
            return layer, -1
    return "face", -1


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as one
    cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(_one_cycle(graph, set(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _one_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = min(w for w in graph[path[-1]] if w in comp)
        if nxt in seen:
            return [*path[path.index(nxt):], nxt]
        path.append(nxt)
        seen.add(nxt)


def test_the_package_is_found_and_walked():
    # the walk must see the whole package, or the checks below prove nothing
    assert len(MODULES) > 100
    assert {"cairn.engine.tracking.lmdbstore", "cairn.app.server", "cairn.tui.app", "cairn.cli.main"} <= set(MODULES)


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]


def test_imports_point_down():
    upward = []
    for mod, deps in _graph().items():
        layer, room = _layer(mod)
        for dep in deps:
            dep_layer, dep_room = _layer(dep)
            if layer == "engine":
                ok = dep_layer == "engine" and dep_room <= room
            else:
                ok = dep_layer in {"engine", layer} or dep_layer in LAYERS[layer]
            if not ok:
                upward.append(f"{mod} ({layer}) imports {dep} ({dep_layer})")
    assert not upward, "imports pointing up or across:\n  " + "\n  ".join(sorted(upward))


def test_layers_keep_to_their_libraries():
    found = []
    for mod, path in MODULES.items():
        layer, _ = _layer(mod)
        banned = FORBIDDEN_LIBS.get(layer, set())
        for name, line in _imports(mod, path):
            if name.split(".")[0] in banned:
                found.append(f"{path}:{line}: {mod} imports {name}")
    assert not found, "\n".join(found)


def _checkout_python_files() -> Iterator[Path]:
    for folder in ("engine", "app", "tui", "cli", "cairn", "tests", "bench", "packaging"):
        yield from (REPO / folder).rglob("*.py")
    yield REPO / "conftest.py"


def test_nothing_imports_the_old_top_level_names():
    """tests, benches and packaging included: `import engine` would still work from the
    checkout and load a second engine module beside cairn.engine."""
    found = []
    for path in _checkout_python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in OLD_TOP_LEVEL]
    assert not found, "\n".join(found)


def test_engine_rooms_are_small_and_say_what_they_hold():
    engine_dir = _package_dirs()["cairn.engine"]
    for room in sorted(p for p in engine_dir.iterdir() if (p / "__init__.py").is_file()):
        modules = [p for p in room.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= MAX_ROOM_MODULES, f"engine/{room.name} holds {len(modules)} modules"
        doc = ast.get_docstring(ast.parse((room / "__init__.py").read_text()))
        assert doc and "Imports:" in doc, f"engine/{room.name}/__init__.py must say what it holds and may import"


@pytest.mark.parametrize("layer", ["engine", "face", "app", "tui", "cli"])
def test_modules_stay_readable(layer):
    long = [f"{mod}: {n} lines" for mod, path in MODULES.items()
            if _layer(mod)[0] == layer and (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, "\n".join(long)
