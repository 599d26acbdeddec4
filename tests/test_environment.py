"""environment.yml (conda) lists the same packages and version ranges as pyproject.toml (pip)."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import REPO

CONDA_NAMES = {"python-duckdb": "duckdb", "pytorch": "torch"}


def normalise(requirement: str) -> tuple[str, str]:
    """(name, specifier) with conda's single '=' read as pip's '=='."""
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*(.*)$", requirement).groups()
    spec = re.sub(r"(?<![<>=!])=(?!=)", "==", spec.replace(" ", ""))
    name = CONDA_NAMES.get(name.lower(), name.lower())
    return name, ",".join(sorted(spec.split(","))) if spec else ""


def pip_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    return dict(normalise(r) for r in reqs)


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    reqs = {}
    for item in env["dependencies"]:
        if isinstance(item, dict):
            reqs.update(normalise(r) for r in item["pip"] if not r.startswith("-e"))
        elif not item.startswith(("python", "pip")) or item.startswith("python-"):
            reqs.update([normalise(item)])
    return reqs


def test_conda_and_pip_list_the_same_packages_and_ranges():
    assert conda_requirements() == pip_requirements()


def test_python_floor_matches():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f"python{project['requires-python']}" in env["dependencies"]
