"""Every notebook follows the template and is committed clean (no outputs, stable metadata);
its student edition is in step with it, holds no solution, and each of its exercises fails on
the student's stub; Colab badges open the student edition."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from colab_check import pip_line
from student_edition import STUDENT, badge_line, colab_url, out_of_step

from pddlib.exercises import BEGIN, END, HINT, has_solution, student_source

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
ALLOWED_METADATA = {"kernelspec", "language_info", "colab"}
SYLLABUS = [
    "01_collect_public_domain_images", "02_forward_noising", "03_train_a_unet",
    "04_seeds_steps_guidance", "05_measuring_quality_fid", "06_does_it_copy", "07_model_card",
    "08_flow_matching", "09_latent_diffusion",
]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_notebooks_follow_the_syllabus() -> None:
    assert NOTEBOOKS, "notebooks/ holds no numbered notebooks"
    assert {p.stem for p in NOTEBOOKS} <= set(SYLLABUS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    for i, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"cell {i} has outputs"
            assert cell.get("execution_count") is None, f"cell {i} has an execution count"
        assert not cell.get("metadata", {}).get("execution"), f"cell {i} has timing metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stable_metadata(path: Path) -> None:
    meta = load(path)["metadata"]
    assert set(meta) <= ALLOWED_METADATA, f"unexpected metadata {set(meta) - ALLOWED_METADATA}"
    assert meta["kernelspec"]["name"] == "python3"
    assert "version" not in meta.get("language_info", {}), "language_info.version is unstable"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_badge_opens_the_student_edition_and_links_the_solutions(path: Path) -> None:
    first = "".join(load(path)["cells"][0]["source"])
    expected = [colab_url(REPO_URL, f"notebooks/student/{path.name}"),
                colab_url(REPO_URL, f"notebooks/{path.name}")]
    links = re.findall(r"https://colab\.research\.google\.com/[^\s)\"']+", first)
    links = [u for u in links if "/assets/" not in u]  # the badge image itself is not a link
    assert links == expected, (f"Colab links {links}, expected {expected}: the first cell's line "
                               f"should read\n{badge_line(REPO_URL, path.name)}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_template(path: Path) -> None:
    cells = load(path)["cells"]
    text = ["".join(c["source"]) for c in cells]
    code = [t for c, t in zip(cells, text, strict=True) if c["cell_type"] == "code"]
    assert cells[0]["cell_type"] == "markdown" and text[0].lstrip().startswith("# ")
    for heading in ("What you will learn", "What you need", "Time"):
        assert heading.lower() in text[0].lower(), f"first cell lacks '{heading}'"
    assert 'FAST = os.environ.get("PDD_FAST") == "1"' in code[0], "setup cell lacks FAST switch"
    assert "google.colab" in code[0], "setup cell does not install pddlib on Colab"
    ending = "\n".join(text[-3:]).lower()
    assert "summary" in ending and "exercise" in ending, "no closing summary and exercises"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_links_to_next_notebook(path: Path) -> None:
    index = SYLLABUS.index(path.stem)
    links = re.findall(r"\]\((\d\d_[a-z_]+)\.ipynb\)", "".join(load(path)["cells"][-1]["source"]))
    if index + 1 < len(SYLLABUS):
        assert links == [SYLLABUS[index + 1]], f"last cell should link to {SYLLABUS[index + 1]}"


# Colab brings its own CUDA torch, numpy and pillow (replacing them would break the runtime);
# nbval and selenium are only for tests. Everything else the course needs is pinned as tested.
NOT_INSTALLED_ON_COLAB = {"torch", "numpy", "pillow", "nbval", "selenium"}


def test_colab_installs_the_tested_pins_and_leaves_colab_torch_alone() -> None:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "constraints.txt").read_text(),
                           re.MULTILINE))
    wanted = {name: v for name, v in pins.items() if name not in NOT_INSTALLED_ON_COLAB}
    commands = {pip_line(p) for p in NOTEBOOKS}
    assert len(commands) == 1, "every notebook installs the same on Colab"
    command = commands.pop()
    assert f'"pddlib @ git+{REPO_URL}"' in command
    assert dict(re.findall(r"([A-Za-z0-9_.-]+)==(\S+)", command)) == wanted


def test_readme_badges_open_both_editions_in_the_repository_of_pyproject() -> None:
    repo = REPO_URL.removeprefix("https://github.com/")
    links = re.findall(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/"
                       r"notebooks/([^)\s]+)", (ROOT / "README.md").read_text())
    names = {p.name for p in NOTEBOOKS}
    assert {name for _, name in links if not name.startswith("student/")} == names
    assert {name for _, name in links if name.startswith("student/")} == {
        f"student/{n}" for n in names}, "README's badges should open notebooks/student/"
    assert {r for r, _ in links} == {repo}


def test_a_fork_repoints_every_badge_and_install_line_in_one_command(tmp_path: Path) -> None:
    import shutil

    from set_repository import set_repository

    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns("*.py", ".ipynb_checkpoints"))
    fork = "https://github.com/someone/pd-fork"
    student = sorted((tmp_path / "notebooks" / "student").glob("*.ipynb"))
    in_step = out_of_step(tmp_path / "notebooks", tmp_path / "notebooks" / "student")
    assert len(set_repository(fork, tmp_path)) == 2 + len(NOTEBOOKS) + len(student)
    everything = "".join(p.read_text() for p in [tmp_path / "README.md",
                                                 *(tmp_path / "notebooks").rglob("*.ipynb")])
    assert REPO_URL.removeprefix("https://github.com/") not in everything
    assert f"git+{fork}" in everything and "github/someone/pd-fork/blob/main" in everything
    # Rewritten alike, the two editions stay as much in step as they were.
    assert out_of_step(tmp_path / "notebooks", tmp_path / "notebooks" / "student") == in_step


# ---------------------------------------------------------------- the student edition, exercises

WITH_EXERCISES = [p for p in NOTEBOOKS
                  if any(has_solution("".join(c["source"])) for c in load(p)["cells"])]
STUDENT_NOTEBOOKS = sorted(STUDENT.glob("[0-9][0-9]_*.ipynb"))


def test_student_edition_is_in_step_with_the_notebooks() -> None:
    wrong = out_of_step()
    assert not wrong, (f"notebooks/student/ is out of step with notebooks/ for {wrong}: run "
                       "`make student` (python scripts/student_edition.py) and commit the result")


def solution_lines(source: str) -> set[str]:
    """The code lines inside a cell's solution blocks that appear nowhere else in the cell."""
    inside, lines, rest = False, set(), set()
    for line in source.splitlines():
        stripped = line.strip()
        if stripped in (BEGIN, END):
            inside = stripped == BEGIN
        elif stripped and not stripped.startswith("#"):
            (lines if inside else rest).add(stripped)
    return {line for line in lines - rest if len(line) >= 20}


def without_hints(code: str) -> str:
    """Code without its comments and the stubs' messages, which repeat the hints."""
    stub = re.compile(r"^\s*raise NotImplementedError\((['\"])Your turn")
    return "\n".join(line.split("#", 1)[0] for line in code.splitlines() if not stub.match(line))


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_holds_no_solution_code(path: Path) -> None:
    """No markers, and no solution line in the exercise's stub or any code after it (the check,
    later cells). Hints may quote formulas, and code shown before an exercise is the lesson."""
    student = load(path)["cells"]
    code = {j: "".join(c["source"]) for j, c in enumerate(student) if c["cell_type"] == "code"}
    assert not any(BEGIN in text or END in text for text in code.values()), "markers left"
    source = ROOT / "notebooks" / path.name
    cells = load(source)["cells"] if source.is_file() else []
    if len(cells) != len(student):
        return  # a stale file, reported by the in-step test
    leaked = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and has_solution("".join(cell["source"])):
            later = [without_hints(text) for j, text in code.items() if j >= i]
            leaked += [f"cell {i}: {line}" for line in solution_lines("".join(cell["source"]))
                       if any(line in text for text in later)]
    assert not leaked, f"solution lines visible in the student edition: {leaked}"


def exercise_pairs(cells: list) -> list[tuple[int, int]]:
    """(solution cell, check cell): each cell with a solution and the next code cell after it."""
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    return [(i, next((j for j in code if j > i), -1)) for i in code
            if has_solution("".join(cells[i]["source"]))]


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_exercise_cells_follow_the_convention(path: Path) -> None:
    cells = load(path)["cells"]
    for i, j in exercise_pairs(cells):
        source = "".join(cells[i]["source"]).splitlines()
        for k, line in enumerate(source):
            if line.strip() == BEGIN:
                above = next((s for s in reversed(source[:k]) if s.strip()), "")
                assert HINT.match(above), f"cell {i}: no '# Hint: ...' line just above {BEGIN}"
        compile(student_source("\n".join(source)), f"cell {i}, student edition", "exec")
        check = "".join(cells[j]["source"]) if j >= 0 else ""
        assert re.search(r"\bcheck(_that)?\(", check), (
            f"cell {i} is an exercise, but the next code cell (cell {j}) calls no check()")


def run_cell(client, cell, index: int) -> list[str]:
    """Execute one cell in the client's kernel; its errors as 'Name: message'."""
    client.execute_cell(cell, index)
    return [f"{o['ename']}: {o['evalue']}" for o in cell.get("outputs", [])
            if o.get("output_type") == "error"]


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.name)
def test_each_exercise_check_fails_on_the_stub_and_passes_on_the_solution(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the notebook to its last check (FAST); at each exercise, its stub first, then its own."""
    import nbformat
    from nbclient import NotebookClient

    for name, value in {"PDD_FAST": "1", "PDD_STATIC": "1", "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(name, value)
    nb = nbformat.read(path, as_version=4)
    pairs = dict(exercise_pairs(nb.cells))
    client = NotebookClient(nb, kernel_name="python3", timeout=600, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells[:max(pairs.values()) + 1]):
            if cell.cell_type != "code":
                continue
            if i in pairs:
                stub = nbformat.v4.new_code_cell(student_source(cell.source))
                errors = run_cell(client, stub, i) or run_cell(
                    client, nbformat.v4.new_code_cell(nb.cells[pairs[i]].source), pairs[i])
                assert errors and errors[0].startswith("NotImplementedError: Your turn"), (
                    f"cell {pairs[i]} should fail on the stub of cell {i}, not with {errors}")
            errors = run_cell(client, cell, i)
            assert not errors, f"cell {i} fails on the solution edition: {errors}"


def exercise_list(path: Path) -> str:
    """The text of a notebook's markdown exercises, after its '## Exercises' heading."""
    for cell in load(path)["cells"]:
        text = "".join(cell["source"])
        heading = re.search(r"^#+ Exercises\b.*$", text, re.MULTILINE)
        if cell["cell_type"] == "markdown" and heading:
            return text[heading.end():]
    return ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_markdown_exercise_states_its_minutes(path: Path) -> None:
    items = re.split(r"^\d+\. ", exercise_list(path), flags=re.MULTILINE)[1:]
    missing = [item.split("\n")[0][:70] for item in items if not re.search(r"\bmin(utes?)?\b", item)]
    assert not missing, f"exercises without their minutes: {missing}"


def code_blocks(path: Path) -> list[str]:
    """The fenced ```python blocks of a notebook's markdown exercises."""
    return re.findall(r"```python\n(.*?)```", exercise_list(path), re.DOTALL)


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if code_blocks(p)], ids=lambda p: p.name)
def test_code_in_markdown_exercises_runs(path: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An exercise that gives code to run runs as given (notebook 01 ran an attribute that only
    the test-only demo wiki has, once)."""
    monkeypatch.chdir(tmp_path)
    for block in code_blocks(path):  # indented as part of a numbered list item
        exec(compile(textwrap.dedent(block), f"{path.name} exercises", "exec"),
             {"__name__": "exercise"})


def test_one_process_stands_in_for_accelerate_in_train_step(data, tmp_path: Path) -> None:
    """Notebook 03 checks the learner's loop against train_step with OneProcess: the same losses
    as train() itself."""
    from pddlib.batches import draw_batch, training_data
    from pddlib.exercises import OneProcess
    from pddlib.models import null_class
    from pddlib.objectives import objective_for
    from pddlib.recipes import tiny_config
    from pddlib.runs import read_loss_log
    from pddlib.training import new_model, train, train_step

    config = tiny_config(max_steps=3, warmup_steps=0, min_lr_ratio=1.0, checkpoint_every=3)
    train(config, data, tmp_path / "run")  # a constant learning rate: AdamW's own
    logged = [r["loss"] for r in read_loss_log(tmp_path / "run")]
    unet, optimizer, ema = new_model(config, data.features["label"].names)
    memory, objective = training_data(data, config), objective_for(config)
    replayed = [train_step(OneProcess(), unet, optimizer, ema, objective, config,
                           draw_batch(config, step, len(memory.x), objective), memory,
                           null_class(unet)) for step in range(config.max_steps)]
    assert replayed == pytest.approx(logged, rel=1e-5, abs=1e-6)
