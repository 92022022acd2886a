"""Point a fork's Colab badges and install lines at the fork: one command, one source of truth.

    python scripts/set_repository.py https://github.com/you/your-fork

The repository URL lives in pyproject.toml (`[project.urls] Repository`). The notebooks' Colab
badges and `%pip install "pddlib @ git+URL"` lines (in both editions: notebooks/ and the student
edition in notebooks/student/) and README's badges are derived from it; this rewrites all of
them from the old URL to the new one, so the two editions stay in step. tests/test_notebooks.py
checks that they agree, so a fork that forgets one fails its tests.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GITHUB = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+$")


def current_url(root: Path = ROOT) -> str:
    """The Repository URL in pyproject.toml."""
    match = re.search(r'^Repository = "([^"]+)"', (root / "pyproject.toml").read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit("pyproject.toml has no [project.urls] Repository line.")
    return match.group(1)


def files(root: Path = ROOT) -> list[Path]:
    """Every file that spells out the repository URL."""
    return [root / "pyproject.toml", root / "README.md",
            *sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")),
            *sorted((root / "notebooks" / "student").glob("[0-9][0-9]_*.ipynb"))]


def set_repository(new: str, root: Path = ROOT) -> list[Path]:
    """Replace the old repository (as URL and as owner/name) by `new`; return changed files."""
    if not GITHUB.match(new):
        raise SystemExit(f"{new!r} is not a GitHub repository URL like "
                         "https://github.com/you/your-fork")
    old = current_url(root)
    old_repo, new_repo = old.removeprefix("https://github.com/"), new.removeprefix(
        "https://github.com/")
    changed = []
    for path in files(root):
        text = path.read_text("utf-8")
        updated = text.replace(old, new).replace(f"github/{old_repo}/", f"github/{new_repo}/")
        if updated != text:
            path.write_text(updated, "utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    for path in set_repository(args[0].rstrip("/")):
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
