"""The import graph of the package: no circles, and the layers import one way.

Every ``import`` statement in ``lmmcompare/**/*.py`` is read with ``ast``,
function-local ones included (a local import defers a cycle, it does not remove
it); relative imports are resolved against the importing module, and
``from package import name`` counts as an import of ``package.name`` when that
is a module.  Imports under ``if TYPE_CHECKING:`` are skipped (never run).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "lmmcompare"
PACKAGE = "lmmcompare"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _type_checking_nodes(tree) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (each resolved to a module that exists)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = _type_checking_nodes(tree)
        targets = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path, node)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in modules:  # import a.b.c of a module a.b
                    name = name.rpartition(".")[0]
                if name.startswith(PACKAGE) and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
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


def _in(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def _imports_from(graph, lower: str, higher: str) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() if _in(m, lower)
                  for t in targets if _in(t, higher))


GRAPH = import_graph()


def test_the_graph_sees_every_module_and_resolves_relative_and_local_imports():
    """The reader itself, on imports whose targets are known: a relative top-level import,
    a package import, and a function-local one (in the freq engine's result)."""
    assert "lmmcompare.freq.inference.profile" in GRAPH
    assert "lmmcompare.core.factor" in GRAPH["lmmcompare.core.gradient"]           # from .factor import ...
    assert "lmmcompare.freq.inference" in GRAPH["lmmcompare.freq.result"]        # from . import inference
    assert "lmmcompare.bayesian.postprocess" in GRAPH["lmmcompare.bayesian.result"]  # local import in a method
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(toy) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    assert cycles(GRAPH) == []


def test_freq_result_and_inference_import_one_way():
    """The circle result -> inference -> fit -> result (issue 17): fit.py knows no LmerFit."""
    below_result = {"lmmcompare.freq.fit", "lmmcompare.freq.estimates", "lmmcompare.freq.optimize"}
    for module in below_result:
        assert not {"lmmcompare.freq.result", "lmmcompare.freq.build"} & GRAPH[module], module
    inference = [m for m in GRAPH if _in(m, "lmmcompare.freq.inference")]
    for module in inference:
        assert not {"lmmcompare.freq.result", "lmmcompare.freq.build"} & GRAPH[module], module


@pytest.mark.parametrize("lower, higher", [
    ("lmmcompare.bayesian", "lmmcompare.freq"),
    ("lmmcompare.core", "lmmcompare.freq"),
    ("lmmcompare.spec", "lmmcompare.freq"),
    ("lmmcompare.core", "lmmcompare.bayesian"),
])
def test_lower_layers_do_not_import_higher_ones(lower, higher):
    assert _imports_from(GRAPH, lower, higher) == []


# The layers of docs/architecture.md, lowest first: a module may import its own layer and lower ones;
# the two engines share layer 3 and import nothing from each other.
LAYERS = [
    ("lmmcompare._version", "lmmcompare.errors", "lmmcompare.arguments", "lmmcompare.progress", "lmmcompare.datasets"),
    ("lmmcompare.spec", "lmmcompare.archive"),
    ("lmmcompare.core",),
    ("lmmcompare.freq", "lmmcompare.bayesian"),
    ("lmmcompare.derived",),
    ("lmmcompare.plots",),
    ("lmmcompare.report",),
    ("lmmcompare.compare", "lmmcompare.validate"),
    ("lmmcompare.frontend", "lmmcompare.loading"),
    ("lmmcompare.cli",),
]


def _layer(module: str) -> tuple[int, str]:
    matches = [(len(room), rank, room) for rank, rooms in enumerate(LAYERS) for room in rooms if _in(module, room)]
    if not matches:
        return len(LAYERS), PACKAGE  # the package's __init__: the top
    _, rank, room = max(matches)
    return rank, room


def test_every_module_sits_in_a_layer_and_imports_go_down():
    upward, across = [], []
    for module, targets in GRAPH.items():
        rank, room = _layer(module)
        for target in targets:
            target_rank, target_room = _layer(target)
            if target_rank > rank:
                upward.append(f"{module} -> {target}")
            elif target_rank == rank == 3 and target_room != room:
                across.append(f"{module} -> {target}")
    assert upward == [] and across == []
    unplaced = [m for m in GRAPH if _layer(m)[1] == PACKAGE and m != PACKAGE]
    assert unplaced == []
