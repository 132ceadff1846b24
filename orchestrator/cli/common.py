"""Helpers shared by the commands."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import Problem, ScenarioError, UsageError

if TYPE_CHECKING:
    from orchestrator.scenario.model import Scenario
    from orchestrator.scenario.sweep import Sweep


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder stands for its *.yaml files but the Compose files among them
    (a project's folder may hold its scenarios and the Compose file they name)."""
    from orchestrator.scenario.loader import is_compose_file  # noqa: PLC0415 - keeps other commands' start-up light

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(p for p in sorted(path.glob("*.yaml")) if not is_compose_file(p))
        else:
            out.append(path)
    return out


def load_all(paths: list[Path]) -> list[Scenario]:
    """Every file checked before anything runs; all problems of all files reported together.
    The subnets are checked against the host's routes too: this is for `validate` and `run`."""
    from orchestrator.scenario.loader import load_scenario  # noqa: PLC0415 - keeps other commands' start-up light
    from orchestrator.scenario.routes import host_routes  # noqa: PLC0415

    routes = host_routes()
    problems = [
        Problem(str(path), None, "", "no scenario files (*.yaml) in this folder")
        for path in paths
        if path.is_dir() and not expand([path])
    ]
    scenarios: list[Scenario] = []
    for path in expand(paths):
        try:
            scenarios.append(load_scenario(path, routes))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return scenarios


def load_runs(paths: list[Path]) -> list[Scenario | Sweep]:
    """As `load_all`, with each sweep file expanded into its runs."""
    from orchestrator.scenario.routes import host_routes  # noqa: PLC0415
    from orchestrator.scenario.sweep import load_sweep  # noqa: PLC0415

    scenarios = load_all(paths)
    routes = host_routes()
    return [
        load_sweep(path, routes) if s.sweep is not None else s
        for path, s in zip(expand(paths), scenarios, strict=True)
    ]


def check_writable_dir(path: Path, option: str) -> None:
    """A directory the run can write into, made if need be (under sudo, the sudo user's): a
    read-only, missing-parent or not-a-directory path is refused here, before any Docker object
    exists, and so is one where other users could swap a run directory for their own."""
    from orchestrator.rundir import check_runs_root, make_dirs  # noqa: PLC0415

    try:
        make_dirs(path)
    except FileExistsError:
        raise UsageError(f"{option} {path}: exists and is not a directory") from None
    except NotADirectoryError:
        raise UsageError(f"{option} {path}: a part of the path is a file, not a directory") from None
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot be created: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".tcpscen-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot create a file there: {exc.strerror or exc}") from None
    check_runs_root(path, option)
