"""The import graph of `ddiff` follows the declared layers (docs/design.md, section 2, "Layers").

Every module under `ddiff/` is parsed with `ast` (nothing is imported), and every import in it
counts: at module level, inside functions and methods, and under `if TYPE_CHECKING:`. A
type-only import does not run, but it is still a dependency of the design (mypy, the reader and
the documentation follow it), and counting it costs nothing: the modules that need a type from
above import it from where the type lives, or take `Any`. `importlib.import_module("ddiff.x")`
with a literal name counts too.

Each module belongs to one node: its subpackage (`ddiff/graphs/base.py` -> `ddiff.graphs`), or
itself for a top-level module (`ddiff/config.py` -> `ddiff.config`); `ddiff/__init__.py` is the
facade node `ddiff`. The checks:

- no cycle between nodes (a cycle is named with file:line of each edge);
- no production module imports `ddiff.testing` (test helpers are shipped, not depended on);
- every edge points down `LAYERS` (or stays within one layer, and then only the cycle check
  applies); a new subpackage must be placed in `LAYERS` first;
- the facade imports from the core only; `lightning` only in `LIGHTNING`.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ddiff"

LAYERS: list[set[str]] = [
    {"ddiff.recipes", "ddiff.testing"},
    {"ddiff.run"},
    {"ddiff.interop", "ddiff.pretrained"},
    {"ddiff.config"},
    {"ddiff.training"},
    {"ddiff.eval"},
    {"ddiff.domains", "ddiff.data"},
    {"ddiff"},  # the facade: `from ddiff import Graph, Sampler`
    {"ddiff.guidance", "ddiff.samplers", "ddiff.losses", "ddiff.nets"},
    {"ddiff.conditioning", "ddiff.graphs", "ddiff.schedules"},
    {"ddiff._checks", "ddiff._categorical", "ddiff.io"},
]
"""Top to bottom: a node may import from its own layer (without a cycle) and from any below.

`ddiff.testing` sits at the top: shipped test helpers that may use everything and that no
production module imports.
"""

CORE = set().union(*LAYERS[-3:]) - {"ddiff"}
"""What the facade `ddiff/__init__.py` may import: the core subpackages and the helpers."""

LIGHTNING = {"ddiff.training", "ddiff.run", "ddiff.recipes"}
"""The only nodes that may import `lightning` (or `pytorch_lightning`)."""


@dataclass(frozen=True)
class Import:
    source: str  # the importing node
    target: str  # the imported module, dotted
    file: str  # path relative to the repository
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def node_of(module: str) -> str:
    """`ddiff.graphs.base` -> `ddiff.graphs`; `ddiff.config` -> itself; `ddiff` -> `ddiff`."""
    parts = module.split(".")
    return ".".join(parts[:2])


def is_package(module: str) -> bool:
    return (ROOT / module.replace(".", "/") / "__init__.py").is_file()


def is_module(module: str) -> bool:
    path = ROOT / module.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    """Every import in the module at `path`, anywhere in it."""
    text = path.read_text(encoding="utf-8")
    return parse_imports(text, module_name(path), path.name == "__init__.py", path)


def parse_imports(text: str, name: str, is_init: bool, path: Path) -> list[Import]:
    """Every import in the source `text` of module `name`: top level, in functions and methods,
    under `if TYPE_CHECKING:`, and `import_module("...")` with a literal name."""
    package = name if is_init else name.rpartition(".")[0]
    tree = ast.parse(text, filename=str(path))
    file = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    found: list[Import] = []

    def add(target: str, line: int) -> None:
        found.append(Import(node_of(name), target, file, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                # `from ddiff import training` imports the subpackage, not the facade.
                sub = f"{module}.{alias.name}"
                add(sub if module.startswith("ddiff") and is_module(sub) else module, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            add(node.args[0].value, node.lineno)
    return found


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def internal_edges() -> list[Import]:
    """Imports of a `ddiff` module from another node."""
    edges = [
        i
        for i in all_imports()
        if (i.target == "ddiff" or i.target.startswith("ddiff.")) and node_of(i.target) != i.source
    ]
    return list(dict.fromkeys(edges))  # `from x import a, b` is one edge


def layer_of(node: str) -> int | None:
    return next((k for k, layer in enumerate(LAYERS) if node in layer), None)


def find_cycles(edges: list[Import]) -> list[tuple[set[str], list[Import]]]:
    """Each strongly connected component of more than one node (Tarjan), with a shortest cycle
    through its first node."""
    graph: dict[str, dict[str, Import]] = defaultdict(dict)
    for e in edges:
        graph[e.source].setdefault(node_of(e.target), e)  # the first edge names the pair
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = []
    for component in components:
        start = min(component)
        # Breadth-first from start back to start inside the component: a shortest cycle.
        previous: dict[str, Import] = {}
        frontier, seen = [start], {start}
        closing: Import | None = None
        while frontier and closing is None:
            nxt = []
            for v in frontier:
                for w, edge in sorted(graph[v].items()):
                    if w == start:
                        closing = edge
                        break
                    if w in component and w not in seen:
                        seen.add(w)
                        previous[w] = edge
                        nxt.append(w)
                if closing is not None:
                    break
            frontier = nxt
        assert closing is not None
        path = [closing]
        while path[-1].source != start:
            path.append(previous[path[-1].source])
        cycles.append((component, path[::-1]))
    return cycles


def describe(edges: list[Import]) -> str:
    return "\n".join(f"  {e.source} -> {e.target}  ({e.where})" for e in edges)


def test_every_node_is_placed_in_a_layer() -> None:
    nodes = {node_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    unplaced = sorted(n for n in nodes if layer_of(n) is None)
    assert not unplaced, f"place these in LAYERS (tests/test_layers.py, docs/design.md): {unplaced}"


def test_the_design_page_lists_the_same_layers() -> None:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    block = text[text.index("**Layers.**") :]
    items = re.findall(r"^\d+\. (.+)$", block[: block.index("\n\n", block.index("1. "))], re.M)
    documented = [
        {"ddiff"} if "facade" in item else {f"ddiff.{n}" for n in re.findall(r"`(\w+)`", item)}
        for item in items
    ]
    assert documented == LAYERS, "docs/design.md's layer list and LAYERS here differ"


def test_no_cycle_between_subpackages() -> None:
    edges = internal_edges()
    parts = []
    for nodes, cycle in find_cycles(edges):
        inside = [e for e in edges if e.source in nodes and node_of(e.target) in nodes]
        parts.append(
            " -> ".join([cycle[0].source, *(node_of(e.target) for e in cycle)])
            + f"\n{describe(cycle)}\n  (all imports among {sorted(nodes)}:)\n{describe(inside)}"
        )
    assert not parts, "import cycles between subpackages:\n" + "\n\n".join(parts)


def test_no_production_module_imports_testing() -> None:
    bad = [
        e
        for e in internal_edges()
        if node_of(e.target) == "ddiff.testing" and e.source != "ddiff.testing"
    ]
    assert not bad, (
        "production code imports the test helpers (move what it needs below, e.g. to "
        f"ddiff.data):\n{describe(bad)}"
    )


def test_every_import_points_down_the_layers() -> None:
    upward = []
    for e in internal_edges():
        source, target = layer_of(e.source), layer_of(node_of(e.target))
        if source is not None and target is not None and target < source:
            upward.append(e)
    assert not upward, f"imports against the layer order (LAYERS, top first):\n{describe(upward)}"


def test_the_facade_imports_the_core_only() -> None:
    bad = [e for e in internal_edges() if e.source == "ddiff" and node_of(e.target) not in CORE]
    assert not bad, f"ddiff/__init__.py may import from the core only:\n{describe(bad)}"


def test_lightning_is_imported_only_by_training_run_and_recipes() -> None:
    bad = [
        i
        for i in all_imports()
        if i.target.split(".")[0] in ("lightning", "pytorch_lightning")
        and i.source not in LIGHTNING
    ]
    assert not bad, f"lightning outside {sorted(LIGHTNING)}:\n{describe(bad)}"


# -- the checker itself, on made-up graphs -----------------------------------------------------------


def edge(source: str, target: str, line: int = 1) -> Import:
    return Import(source, target, f"ddiff/{source.split('.')[-1]}.py", line)


def test_find_cycles_names_each_edge_of_a_cycle() -> None:
    edges = [
        edge("ddiff.a", "ddiff.b.x", 3),
        edge("ddiff.b", "ddiff.c", 5),
        edge("ddiff.c", "ddiff.a.y", 7),
        edge("ddiff.c", "ddiff.d", 9),  # not on the cycle
    ]
    ((component, cycle),) = find_cycles(edges)
    assert component == {"ddiff.a", "ddiff.b", "ddiff.c"}
    assert [(e.source, e.line) for e in cycle] == [("ddiff.a", 3), ("ddiff.b", 5), ("ddiff.c", 7)]
    assert find_cycles(edges[:2] + edges[3:]) == []


def test_imports_inside_functions_and_type_checking_blocks_count() -> None:
    text = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ddiff.training import OptimSettings\n"
        "class C:\n"
        "    def f(self):\n"
        "        import ddiff.config\n"
        "        from . import base\n"
        "        from ..graphs import Graph\n"
        "        return importlib.import_module('ddiff.recipes')\n"
    )
    found = parse_imports(text, "ddiff.eval.fake", False, Path("fake.py"))
    assert [(i.target, i.line) for i in found if i.target.startswith("ddiff")] == [
        ("ddiff.training", 3),
        ("ddiff.config", 6),
        ("ddiff.eval", 7),
        ("ddiff.graphs", 8),
        ("ddiff.recipes", 9),
    ]
    assert {i.source for i in found} == {"ddiff.eval"}
    # `from ddiff import training` is the subpackage, `from ddiff import Graph` the facade
    found = parse_imports("from ddiff import Graph, training\n", "ddiff.x", False, Path("x.py"))
    assert [i.target for i in found] == ["ddiff", "ddiff.training"]
