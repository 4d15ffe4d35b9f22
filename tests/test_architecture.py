"""The import structure stays one-way: each module sits on a floor, and imports only its own floor or those below.

The import graph is read from the source with ``ast`` (module-level and function-level imports), so an import hidden
inside a function counts too. ``"module:function"`` strings are imports by name, resolved when called (the metric
registry's compute functions, the sampler loader): they must respect the floors too, but being late-bound they cannot
form an import cycle, so the cycle check leaves them out. docs/architecture.md describes the floors; :data:`FLOORS`
below is where they are defined.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = "dicetalk_bench"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Bottom floor first. A room is a module or a package (with its submodules); a module belongs to the room with the
# longest matching name. The package root (``dicetalk_bench/__init__.py``: the version) is on the ground floor.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground: config and shared facts", (
        PACKAGE, f"{PACKAGE}.config", f"{PACKAGE}.datasets", f"{PACKAGE}.errors", f"{PACKAGE}.fileutil",
        f"{PACKAGE}.allocator", f"{PACKAGE}.extras", f"{PACKAGE}.cli_args", f"{PACKAGE}.cli_errors",
        f"{PACKAGE}.quiet", f"{PACKAGE}.summary_table", f"{PACKAGE}.pcm", f"{PACKAGE}.git_state")),
    ("weights and media", (f"{PACKAGE}.weights", f"{PACKAGE}.media")),
    ("preprocessing", (f"{PACKAGE}.preprocessing",)),
    ("metrics, model and baselines", (f"{PACKAGE}.metrics", f"{PACKAGE}.model", f"{PACKAGE}.baselines")),
    ("reports", (f"{PACKAGE}.reports",)),
    ("evaluation runs", (f"{PACKAGE}.evaluation",)),
    ("command lines and tools", (
        f"{PACKAGE}.evaluate", f"{PACKAGE}.sample", f"{PACKAGE}.train", f"{PACKAGE}.train_embedder",
        f"{PACKAGE}.preprocess", f"{PACKAGE}.convert_release", f"{PACKAGE}.demo_data", f"{PACKAGE}.demo",
        f"{PACKAGE}.demo_chain", f"{PACKAGE}.random_weight_builders",
        f"{PACKAGE}.weights.__main__", f"{PACKAGE}.metrics.__main__")),
)

# Floors on which rooms may import each other (shared basics use each other; command lines compose others).
OPEN_FLOORS = {"ground: config and shared facts", "command lines and tools"}

# Known exceptions (importer, imported), each with what is left to do. Empty: none.
ALLOWED: dict[tuple[str, str], str] = {}

_BY_NAME = re.compile(rf"^{PACKAGE}(\.\w+)+:\w+$")  # "module:function", resolved with importlib at run time


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, known: set[str], *, by_name: bool = True) -> set[str]:
    """Modules of the package that ``module`` imports anywhere in its source (and, with ``by_name``, names as
    ``module:function``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def add(name: str) -> None:
        while name and name not in known:  # "pkg.mod.attr" -> "pkg.mod"
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith(PACKAGE):
                for alias in node.names:  # "from pkg import mod" imports the module pkg.mod
                    sub = f"{target}.{alias.name}"
                    add(sub if sub in known else target)
        elif by_name and isinstance(node, ast.Constant) and isinstance(node.value, str) and _BY_NAME.match(node.value):
            add(node.value.partition(":")[0])
    return found


def _room(module: str) -> tuple[int, str]:
    """(floor index, room name) of a module: the longest room name that is the module or a package above it."""
    best: tuple[int, str] | None = None
    for floor, (_, rooms) in enumerate(FLOORS):
        for room in rooms:
            if module == room or (room != PACKAGE and module.startswith(room + ".")):
                if best is None or len(room) > len(best[1]):
                    best = (floor, room)
    if best is None:
        raise LookupError(module)
    return best


def import_graph(*, by_name: bool = True) -> dict[str, set[str]]:
    """module -> the package modules it imports (see :func:`_imports`)."""
    modules = _modules()
    known = set(modules)
    return {m: _imports(m, p, known, by_name=by_name) for m, p in modules.items()}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_sits_on_a_floor(graph: dict[str, set[str]]) -> None:
    homeless = []
    for module in graph:
        try:
            _room(module)
        except LookupError:
            homeless.append(module)
    assert not homeless, f"add these modules to a floor in FLOORS (and docs/architecture.md): {homeless}"


def test_no_room_imports_a_room_above_it_or_beside_it(graph: dict[str, set[str]]) -> None:
    bad = []
    for module, targets in graph.items():
        floor, room = _room(module)
        for target in targets:
            t_floor, t_room = _room(target)
            upward = t_floor > floor
            sideways = (t_floor == floor and t_room != room and FLOORS[floor][0] not in OPEN_FLOORS
                        and not _room_contains(t_room, room) and not _room_contains(room, t_room))
            if (upward or sideways) and (module, target) not in ALLOWED:
                bad.append(f"{module} ({FLOORS[floor][0]}) imports {target} ({FLOORS[t_floor][0]})")
    assert not bad, "imports against the floors:\n" + "\n".join(sorted(bad))


def _room_contains(outer: str, inner: str) -> bool:
    return inner.startswith(outer + ".")


def test_no_import_cycle_between_modules() -> None:
    cycles = _cycles(import_graph(by_name=False))
    assert not cycles, "import cycles (move the shared piece down a floor): " + "; ".join(
        " -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checks_see_imports_inside_functions_and_by_name(tmp_path: Path) -> None:
    """The graph reader finds a function-level import, a relative import and a "module:function" string, and the
    checks flag an upward import and a two-module cycle."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from dicetalk_bench.reports import render\n"
                   "    from .emotion import x\n"
                   "LOADER = 'dicetalk_bench.model.pipeline:load_sampler'\n")
    known = {f"{PACKAGE}.reports", f"{PACKAGE}.reports.render", f"{PACKAGE}.metrics.emotion",
             f"{PACKAGE}.model.pipeline", f"{PACKAGE}.metrics.m"}
    found = _imports(f"{PACKAGE}.metrics.m", src, known)
    assert found == {f"{PACKAGE}.reports.render", f"{PACKAGE}.metrics.emotion", f"{PACKAGE}.model.pipeline"}
    assert _imports(f"{PACKAGE}.metrics.m", src, known, by_name=False) == found - {f"{PACKAGE}.model.pipeline"}
    assert _room(f"{PACKAGE}.reports.render")[0] > _room(f"{PACKAGE}.metrics.m")[0]
    assert _room(f"{PACKAGE}.weights.__main__")[0] == len(FLOORS) - 1
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
