"""Import structure: the command line, the run directories and the benchmark import in one direction only.

Every ``import`` statement counts, at module level or inside a function: a function-level import that closes a
circle still couples two modules both ways.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "modnas").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports() -> dict[str, set[str]]:
    """Module -> the modnas modules its import statements name (``from a import b`` names ``a.b`` if a module)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [resolve(f"{node.module}.{a.name}") for a in node.names]
            else:
                continue
            graph[module] |= {t for t in targets if t and t != module}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


GRAPH = _imports()


@pytest.mark.parametrize(
    "module",
    [
        "modnas.cli",
        "modnas.commands.predictor",
        "modnas.commands.common",
        "modnas.rundir",
        "modnas.plots",
        "modnas.search.run",
        "modnas.search.trained",
        "modnas.baselines.benchmark",
        "modnas.baselines.figures",
        "modnas.baselines.report",
    ],
)
def test_module_is_in_no_import_circle(module):
    assert module not in _reachable(GRAPH, module)


def test_the_graph_sees_function_level_imports():
    # the search imports its loops inside a function; the walk must see such imports to judge circles
    assert "modnas.search.benchmark" in GRAPH["modnas.search.run"]
    assert "modnas.baselines.protocol" in GRAPH["modnas.rundir"]
