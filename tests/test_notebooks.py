"""Every notebook follows the template and is committed clean (no outputs, stable metadata)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from colab_check import pip_line

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
def test_colab_badge_points_at_itself(path: Path) -> None:
    first = "".join(load(path)["cells"][0]["source"])
    repo = REPO_URL.removeprefix("https://github.com/")
    expected = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{path.name}"
    links = re.findall(r"https://colab\.research\.google\.com/[^\s)\"']+", first)
    links = [u for u in links if "/assets/" not in u]  # the badge image itself is not a link
    assert links == [expected], f"badge links {links}, expected [{expected}]"


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


def test_readme_badges_point_at_the_repository_of_pyproject() -> None:
    repo = REPO_URL.removeprefix("https://github.com/")
    links = re.findall(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/main/"
                       r"notebooks/([^)\s]+)", (ROOT / "README.md").read_text())
    assert {name for _, name in links} == {p.name for p in NOTEBOOKS}
    assert {r for r, _ in links} == {repo}


def test_a_fork_repoints_every_badge_and_install_line_in_one_command(tmp_path: Path) -> None:
    import shutil

    from set_repository import set_repository

    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns("*.py", ".ipynb_checkpoints"))
    fork = "https://github.com/someone/pd-fork"
    assert len(set_repository(fork, tmp_path)) == 2 + len(NOTEBOOKS)
    everything = "".join(p.read_text() for p in [tmp_path / "README.md",
                                                 *(tmp_path / "notebooks").glob("*.ipynb")])
    assert REPO_URL.removeprefix("https://github.com/") not in everything
    assert f"git+{fork}" in everything and "github/someone/pd-fork/blob/main" in everything
