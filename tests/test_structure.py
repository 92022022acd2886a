"""pddlib's shape: imports point one way (no cycles, even inside functions), functions stay short."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pddlib"
MAX_FUNCTION_LINES = 80  # not counting the signature and the docstring


def module_name(path: Path) -> str:
    """pddlib/metrics/judge.py -> pddlib.metrics.judge; a package's __init__ -> the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text("utf-8")) for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the pddlib modules it imports anywhere (top level or inside functions)."""
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, tree in mods.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from pkg import sub` imports the submodule `pkg.sub` when there is one.
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods
                           else node.module for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert graph["pddlib.training"] >= {"pddlib.runs", "pddlib.checkpoint", "pddlib.pipeline"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_leaf_modules_import_nothing_heavier_than_each_other() -> None:
    graph = import_graph()
    leaves = {"pddlib.files", "pddlib.pixels", "pddlib.labels", "pddlib.schedulers",
              "pddlib.defaults"}
    for leaf in leaves:
        assert graph[leaf] <= leaves, (leaf, graph[leaf])
    assert graph["pddlib.runs"] <= leaves
    # Metrics never reach for the trainer: a trained run is loaded through the pipeline.
    assert not any("pddlib.training" in graph[m] for m in graph if m.startswith("pddlib.metrics"))


def test_the_runtime_package_never_imports_maintainer_or_test_code() -> None:
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                    node.module or ""]
                bad = [n for n in names if n.split(".")[0] in (
                    "rasterise", "openclipart_builder", "faultywiki", "cairosvg")]
                assert not bad, f"{name} imports {bad}"


def test_no_function_is_longer_than_it_needs_to_be() -> None:
    long = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                has_doc = (len(body) > 1 and isinstance(body[0], ast.Expr)
                           and isinstance(body[0].value, ast.Constant)
                           and isinstance(body[0].value.value, str))
                first = body[1] if has_doc else body[0]
                lines = node.end_lineno - first.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long
