"""pyproject.toml and environment.yml describe the same environment; the build is sane."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def name_of(requirement: str) -> str:
    """Normalised distribution name of a requirement string ('Pillow>=10' -> 'pillow')."""
    name = re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_names() -> set[str]:
    """Names pip installs from pyproject for the Python that environment.yml pins (3.11)."""
    from packaging.requirements import Requirement

    reqs = list(PYPROJECT["dependencies"])
    for extra in ("course", "dev"):
        reqs += PYPROJECT["optional-dependencies"][extra]
    env = {"python_version": "3.11", "python_full_version": "3.11.0"}
    reqs = [r for r in reqs if not (m := Requirement(r).marker) or m.evaluate(env)]
    return {name_of(r) for r in reqs} - {"pddlib"}


def environment_names() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {name_of(r) for r in dep["pip"] if not r.startswith("-")}
        else:
            names.add(name_of(dep.split("=")[0]))
    return names - {"python", "pip"}


def test_environment_matches_pyproject() -> None:
    assert environment_names() == pyproject_names()


def test_no_torchvision_and_torch_range_admits_2_13() -> None:
    names = pyproject_names() | environment_names()
    assert "torchvision" not in names
    torch_req = next(r for r in PYPROJECT["dependencies"] if name_of(r) == "torch")
    from packaging.specifiers import SpecifierSet

    assert "2.13.0" in SpecifierSet(torch_req.removeprefix("torch"))


def test_console_script_is_declared() -> None:
    assert PYPROJECT["scripts"]["pddlib"] == "pddlib.cli:main"
