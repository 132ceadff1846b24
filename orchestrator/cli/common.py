"""Helpers shared by the commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import Problem, ScenarioError

if TYPE_CHECKING:
    from orchestrator.scenario.model import Scenario


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for its *.yaml files."""
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return out


def load_all(paths: list[Path]) -> list[Scenario]:
    """Every file checked before anything runs; all problems of all files reported together."""
    from orchestrator.scenario.loader import load_scenario  # noqa: PLC0415 - keeps other commands' start-up light

    problems: list[Problem] = []
    scenarios: list[Scenario] = []
    for path in expand(paths):
        try:
            scenarios.append(load_scenario(path))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return scenarios
