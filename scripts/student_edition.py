"""Build the student edition of every notebook from the maintained (solution) edition.

    python scripts/student_edition.py           # or: make student
    python scripts/student_edition.py --check   # exit 1, naming the files, if it is out of step

notebooks/NN_*.ipynb hold the solutions between `### BEGIN SOLUTION` / `### END SOLUTION` lines;
notebooks/student/NN_*.ipynb are the same notebooks with every solution block replaced by a stub
that raises NotImplementedError with its hint (`pddlib.exercises.student_source`). Every other
cell, the cell ids and the metadata stay as they are, so the two editions differ only there.
The student edition is committed (the Colab badges open it); tests/test_notebooks.py rebuilds it
and fails while the committed copy differs.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from pddlib.exercises import has_solution, student_source

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks"
STUDENT = SOURCE / "student"
PATTERN = "[0-9][0-9]_*.ipynb"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(repo_url: str, path: str) -> str:
    """The Colab link that opens `path` (from the repository root) on GitHub's main branch."""
    repo = repo_url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/main/{path}"


def badge_line(repo_url: str, name: str) -> str:
    """A notebook's Colab line: the badge opens the student edition, a link the solutions."""
    student = colab_url(repo_url, f"notebooks/student/{name}")
    solutions = colab_url(repo_url, f"notebooks/{name}")
    return (f"[![Open In Colab]({BADGE})]({student}) the student edition, with cells for you to "
            f"fill in · [the edition with solutions]({solutions})")


def student_notebook(nb: dict) -> dict:
    """A copy of a notebook (nbformat JSON) with each solution block replaced by its stub."""
    out = copy.deepcopy(nb)
    for cell in out["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and has_solution(source):
            cell["source"] = student_source(source).splitlines(keepends=True)
    return out


def render(nb: dict) -> str:
    """A notebook's JSON as the repository stores notebooks (indent 1, a final newline)."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def expected(source_dir: Path = SOURCE) -> dict[str, str]:
    """File name -> the text the student edition of each notebook in source_dir must have."""
    return {path.name: render(student_notebook(json.loads(path.read_text("utf-8"))))
            for path in sorted(source_dir.glob(PATTERN))}


def out_of_step(source_dir: Path = SOURCE, student_dir: Path = STUDENT) -> list[str]:
    """Student-edition files that are missing, stale or left over from a removed notebook."""
    wanted = expected(source_dir)
    present = {p.name for p in student_dir.glob(PATTERN)} if student_dir.is_dir() else set()
    wrong = [name for name, text in wanted.items()
             if not (student_dir / name).is_file()
             or (student_dir / name).read_text("utf-8") != text]
    return sorted(wrong + sorted(present - set(wanted)))


def build(source_dir: Path = SOURCE, student_dir: Path = STUDENT) -> list[Path]:
    """Write the student edition; remove notebooks whose source is gone; return changed files."""
    student_dir.mkdir(parents=True, exist_ok=True)
    wanted, changed = expected(source_dir), []
    for name, text in wanted.items():
        path = student_dir / name
        if not path.is_file() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")
            changed.append(path)
    for path in student_dir.glob(PATTERN):
        if path.name not in wanted:
            path.unlink()
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--check"]:
        wrong = out_of_step()
        for name in wrong:
            print(f"out of step: notebooks/student/{name} (run `make student`)")
        return 1 if wrong else 0
    if args:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    for path in build():
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
