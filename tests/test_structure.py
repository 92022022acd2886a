"""pddlib's shape: every module has one place in README's layers and imports point down them
(no cycles, even inside functions); folder layouts' file names are spelled in one module each;
functions stay short.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pddlib"
MAX_FUNCTION_LINES = 60  # not counting the signature and the docstring
# The modules that spell a folder layout's names (a run folder; a dataset folder): their UPPERCASE
# path-like string constants are the only spelling of those names in pddlib.
NAME_HOMES = ("pddlib.runs", "pddlib.data.schema")
# (module, folder name) where the name is another program's folder: torch.hub's own cache.
FOREIGN_FOLDERS = {("pddlib.metrics.hub_cache", "checkpoints")}


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


# ---------------------------------------------------------------- layers (README's Architecture)


def layer_table(readme: str) -> list[tuple[str, list[str]]]:
    """(layer, its `modules` cells) per row of README's Architecture table, lowest layer first."""
    section = re.search(r"^## Architecture\n(.*?)(?=^## |\Z)", readme, re.M | re.S)[1]
    rows = [line.split("|") for line in section.splitlines()
            if line.startswith("|") and not set(line) <= set("|-: ")]
    return [(cells[1].split(" (")[0].strip(), re.findall(r"`([\w.*]+)`", cells[2]))
            for cells in rows[1:]]  # rows[0] is the header


def place(mods: set[str], table: list[tuple[str, list[str]]]) -> tuple[dict[str, int], list[str]]:
    """Each module's layer (an index into `table`), and what is wrong with the table."""
    layer: dict[str, int] = {}
    problems = []
    for i, (name, entries) in enumerate(table):
        for entry in entries:  # `pddlib` is the package itself; `metrics.*` a whole package
            full = entry if entry == "pddlib" else f"pddlib.{entry}"
            package = full.removesuffix(".*")
            found = ({m for m in mods if m == package or m.startswith(package + ".")}
                     if full.endswith(".*") else {full} & mods)
            if not found:
                problems.append(f"README's table names `{entry}` ({name}): no such module")
            for m in sorted(found):
                if m in layer:
                    problems.append(f"{m} is listed twice: {table[layer[m]][0]} and {name}")
                layer.setdefault(m, i)
    problems += [f"{m} is missing from README's Architecture table"
                 for m in sorted(mods - layer.keys())]
    return layer, problems


def upward_imports(graph: dict[str, set[str]], layer: dict[str, int],
                   table: list[tuple[str, list[str]]]) -> list[str]:
    """Every import of a module in a higher layer than the importer's (unplaced ones skipped)."""
    return [f"{m} ({table[layer[m]][0]}) imports {t} ({table[layer[t]][0]}, a higher layer)"
            for m in sorted(graph) for t in sorted(graph[m])
            if m in layer and t in layer and layer[t] > layer[m]]


def test_every_module_has_one_place_in_readmes_architecture_table() -> None:
    table = layer_table((ROOT / "README.md").read_text("utf-8"))
    _, problems = place(set(modules()), table)
    assert not problems, "\n".join(problems)


def test_imports_never_point_to_a_higher_layer() -> None:
    graph, table = import_graph(), layer_table((ROOT / "README.md").read_text("utf-8"))
    upward = upward_imports(graph, place(set(graph), table)[0], table)
    assert not upward, "\n".join(upward)


def test_the_layer_checker_finds_upward_imports_and_table_mistakes() -> None:
    readme = ("## Architecture\n\n| layer | modules | what |\n|---|---|---|\n"
              "| low (leaves) | `pddlib`, `a`, `gone` | x |\n| high | `b`, `m.*`, `a` | y |\n"
              "\n## Licence\n| not | `c` | a layer |\n")
    table = layer_table(readme)
    assert table == [("low", ["pddlib", "a", "gone"]), ("high", ["b", "m.*", "a"])]
    mods = {"pddlib", "pddlib.a", "pddlib.b", "pddlib.m", "pddlib.m.x", "pddlib.c"}
    layer, problems = place(mods, table)
    assert problems == ["README's table names `gone` (low): no such module",
                        "pddlib.a is listed twice: low and high",
                        "pddlib.c is missing from README's Architecture table"]
    graph = {"pddlib.a": {"pddlib.m.x", "pddlib"}, "pddlib.m.x": {"pddlib.b", "pddlib.a"},
             "pddlib.b": {"pddlib.m"}, "pddlib.c": {"pddlib.b"}}
    assert upward_imports(graph, layer, table) == [
        "pddlib.a (low) imports pddlib.m.x (high, a higher layer)"]


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert graph["pddlib.trained"] >= {"pddlib.runs", "pddlib.training"}  # inside a function too
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_metrics_never_import_the_trainer() -> None:
    # A lower layer, yet off limits: metrics load a trained run through the pipeline.
    graph = import_graph()
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


# ---------------------------------------------------------------- file names spelled in one place


def home_names(home: str) -> set[str]:
    """The path-like values of a module's UPPERCASE string constants ("provenance/x.jsonl")."""
    import importlib

    values = vars(importlib.import_module(home)).items()
    return {v for k, v in values if k.isupper() and isinstance(v, str)
            and re.fullmatch(r"[\w.-]+(/[\w.-]+)*", v)}


def spelled_names(source: str, files: set[str], folders: set[str]) -> list[tuple[int, str]]:
    """(line, literal) of string literals outside docstrings that spell one of the names.

    A file name (with a suffix) counts wherever it is a whole "/"-separated part of a literal;
    a bare folder name only where it is part of a path: joined with `/`, or in a literal with "/".
    URLs are someone else's paths.
    """
    tree = ast.parse(source)
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr)}
    joined = {id(side) for n in ast.walk(tree) if isinstance(n, ast.BinOp)
              and isinstance(n.op, ast.Div) for side in (n.left, n.right)}
    found = []
    for n in ast.walk(tree):
        if (isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
                and "://" not in n.value):
            parts = set(n.value.split("/"))
            in_path = "/" in n.value or id(n) in joined
            if parts & files or (in_path and parts & folders):
                found.append((n.lineno, n.value))
    return sorted(found)


def test_folder_layout_names_are_spelled_only_in_their_module() -> None:
    names = {home: home_names(home) for home in NAME_HOMES}
    assert {"train_config.json", "provenance/manifest.jsonl", "checkpoints"} <= names[
        "pddlib.runs"]
    misplaced = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        others = set().union(*(v for home, v in names.items() if home != module))
        files = {p for v in others for p in v.split("/") if re.search(r"\w\.\w+$", p)}
        folders = {v for v in others if "/" not in v and "." not in v}
        folders -= {f for m, f in FOREIGN_FOLDERS if m == module}
        misplaced += [f"{module}:{line} spells {value!r}"
                      for line, value in spelled_names(path.read_text("utf-8"), files, folders)]
    assert not misplaced, "\n".join(misplaced)


def test_the_name_finder_finds_names_in_code_not_in_docstrings() -> None:
    source = '''"""Module docstring: state.json is fine here."""
def f(run, ckpt):
    """So is unet/ here."""
    a = run / "state.json"
    b = f"{run}/provenance/manifest.jsonl"
    c = ckpt / "unet", "unet", {"unet": 1}
    d = "state.json is written last", run.glob("checkpoints/*"), "manifest.jsonl.part"
    e = "https://example.org/unet/state.json"
'''
    found = spelled_names(source, {"state.json", "manifest.jsonl"}, {"unet", "checkpoints"})
    assert found == [(4, "state.json"), (5, "/provenance/manifest.jsonl"), (6, "unet"),
                     (7, "checkpoints/*")]


# ---------------------------------------------------------------- short functions


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
