"""Sweeps: one scenario file, one run per combination of the values under `sweep:`.

    sweep:
      hosts.client.sysctls.net.ipv4.tcp_retries2: [3, 5, 8]

The rest of the file is a scenario like any other, and must be valid as it stands: the sweep
replaces values in it (each key names one value, `leaf.py`). Every value is checked as a scenario
file would be, by the whole loader, with that one value put in; with several keys, every
combination too. A problem is told at the value's own line (`sweep.KEY[i]`), or at `sweep:` for
a combination, all of them at once.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import Problem, ScenarioError
from orchestrator.scenario import leaf
from orchestrator.scenario.leaf import Leaf, SweepKeyError
from orchestrator.scenario.loader import locate, make_scenario
from orchestrator.scenario.matrix import SweepValue
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.routes import Route
from orchestrator.scenario.source import read_source
from orchestrator.scenario.yamlpos import Located

MAX_RUNS = 100  # combinations: as many as --repeat allows runs of one scenario
# Keys: with at most 100 runs, no more than 6 can take two values. The bounds also bound the
# checking (each value, then each combination, is a scenario loaded): well under a second.
MAX_KEYS = 8
Combo = tuple[int, ...]  # an index into each key's values


@dataclass(frozen=True)
class SweepKey:
    leaf: Leaf
    short: str  # its name in labels: the shortest tail of the key no other key ends with
    values: tuple[SweepValue, ...]

    @property
    def key(self) -> str:
        return self.leaf.key


@dataclass(frozen=True)
class Point:
    """One combination: a value per key (in the sweep's order), and the scenario it makes."""

    values: tuple[SweepValue, ...]
    label: str  # "tcp_retries2=3": the run's name and directory
    scenario: Scenario
    settings: tuple[float | None, ...]  # each value as the model took it, when it is a number


@dataclass
class Sweep:
    name: str
    file: str
    keys: list[SweepKey]
    points: list[Point]
    # What `scenario_at` needs: the file's data (without `sweep:`) and how it was loaded.
    data: dict[str, Any] = field(repr=False)
    folder: Path = Path()

    def scenario_at(self, values: Sequence[Any]) -> Scenario | None:
        """The scenario with these values (one per key), or None if it is not valid: how a
        model's curve is drawn between the values that ran."""
        try:
            return _make(self.data, self.keys, values, self.file, self.name, None, self.folder)
        except ScenarioError:
            return None


def load_sweep(path: Path, routes: Sequence[Route] | None = None) -> Sweep:
    """A sweep file, expanded; a ScenarioError with every problem, as `load_scenario` gives."""
    file = str(path)
    located = locate(read_source(path), file)
    base = make_scenario(located, file, path.stem, routes, path.resolve().parent)
    if base.sweep is None:
        raise ScenarioError([Problem(file, None, "", "not a sweep: the file has no `sweep:`")])
    keys, points = _expand(located, file, path.stem, routes, path.resolve().parent)
    data = {k: v for k, v in located.data.items() if k != "sweep"}
    return Sweep(base.name, file, keys, points, data, path.resolve().parent)


def expand(
    located: Located, file: str, default_name: str, routes: Sequence[Route] | None, folder: Path
) -> list[Point]:
    """Every combination of a valid scenario file's sweep, each checked as a file; a
    ScenarioError with every problem otherwise."""
    return _expand(located, file, default_name, routes, folder)[1]


def _expand(
    located: Located, file: str, default_name: str, routes: Sequence[Route] | None, folder: Path
) -> tuple[list[SweepKey], list[Point]]:
    data: dict[str, Any] = located.data
    base = {k: v for k, v in data.items() if k != "sweep"}
    name = str(data.get("name", default_name))
    # The keys that name a value get their values checked even if others do not: all at once.
    keys, problems = _keys(located, file)
    if any(p.message.endswith(f"at most {MAX_RUNS} runs") for p in problems):
        raise ScenarioError(problems)  # too many to check one by one
    # Each value alone first: a value the leaf refuses is that value's problem.
    for k in keys:
        for i, value in enumerate(k.values):
            try:
                _make(base, [k], [value], file, name, routes, folder)
            except ScenarioError as exc:
                line = located.line_of(("sweep", k.key, i))
                problems += [_blame(p, file, line, f"sweep.{k.key}[{i}]", value, k) for p in exc.problems]
    if problems:
        raise ScenarioError(_unique(problems))
    points: list[Point] = []
    failing: dict[str, set[Combo]] = {}  # a problem -> the combinations that have it
    for combo in itertools.product(*(range(len(k.values)) for k in keys)):
        values = [k.values[i] for k, i in zip(keys, combo, strict=True)]
        try:
            scenario = _make(base, keys, values, file, name, routes, folder)
        except ScenarioError as exc:
            for p in exc.problems:
                failing.setdefault(_said(p), set()).add(combo)
            continue
        numbers = tuple(_number(leaf.read(scenario, k.leaf.path)) for k in keys)
        points.append(Point(tuple(values), _label(keys, values), scenario, numbers))
    line = located.line_of(("sweep",))
    for said, combos in failing.items():
        for label in _causes(keys, combos):
            problems.append(Problem(file, line, "sweep", f"with {label}: {said}"))
    if problems:
        raise ScenarioError(problems)
    return keys, points


def _causes(keys: list[SweepKey], combos: set[Combo]) -> list[str]:
    """The values a problem of some combinations comes from: a key matters if changing its value
    alone can make the problem go; each distinct set of the values that matter, once."""
    matters = [
        n
        for n, k in enumerate(keys)
        if any((*c[:n], v, *c[n + 1 :]) not in combos for c in combos for v in range(len(k.values)))
    ]
    shown = {tuple(c[n] for n in matters) for c in combos}
    picked = [keys[n] for n in matters]
    return [_label(picked, [k.values[i] for k, i in zip(picked, s, strict=True)]) for s in sorted(shown)]


def _keys(located: Located, file: str) -> tuple[list[SweepKey], list[Problem]]:
    matrix: dict[str, list[SweepValue]] = located.data["sweep"]
    problems: list[Problem] = []
    where = located.line_of(("sweep",))
    if not matrix:
        problems.append(Problem(file, where, "sweep", "no keys: name a value and the values to try"))
    if len(matrix) > MAX_KEYS:
        return [], [Problem(file, where, "sweep", f"{len(matrix)} keys: at most {MAX_KEYS}")]
    leaves: list[tuple[Leaf, tuple[SweepValue, ...]]] = []
    for key, values in matrix.items():
        line = located.line_of(("sweep", key))
        try:
            found = leaf.resolve(key, located.data)
        except SweepKeyError as exc:
            problems.append(Problem(file, line, f"sweep.{key}", str(exc)))
            continue
        same = next((other for other, _ in leaves if _overlap(other.path, found.path)), None)
        if same is not None:
            problems.append(Problem(file, line, f"sweep.{key}", f"names the same value as {same.key}"))
        if not values:
            problems.append(Problem(file, line, f"sweep.{key}", "no values: give the values to try"))
        for i, value in enumerate(values):
            if any(_same(value, v) for v in values[:i]):
                problems.append(
                    Problem(
                        file,
                        located.line_of(("sweep", key, i)),
                        f"sweep.{key}[{i}]",
                        f"{_shown(value)} twice",
                    )
                )
        leaves.append((found, tuple(values)))
    runs = math.prod(len(v) for _, v in leaves) if leaves else 0
    if runs > MAX_RUNS:
        problems.append(Problem(file, where, "sweep", f"{runs} combinations: at most {MAX_RUNS} runs"))
    shorts = _shorts([lf.key for lf, _ in leaves])
    return [SweepKey(lf, shorts[lf.key], v) for lf, v in leaves], problems


def _make(
    base: dict[str, Any],
    keys: Sequence[SweepKey],
    values: Sequence[Any],
    file: str,
    name: str,
    routes: Sequence[Route] | None,
    folder: Path,
) -> Scenario:
    data = base
    for k, value in zip(keys, values, strict=True):
        data = leaf.put(data, k.leaf.path, value)
    data = {**data, "name": f"{name}[{_label(keys, values)}]"}
    return make_scenario(Located(data), file, name, routes, folder)


def _blame(
    problem: Problem, file: str, line: int | None, key: str, value: SweepValue, k: SweepKey
) -> Problem:
    """A problem of the scenario with one value put in, told at the value."""
    at = "" if problem.key in ("", leaf.dotted(k.leaf.path)) else f"{problem.key}: "
    return Problem(file, line, key, f"{_shown(value)}: {at}{problem.message}")


def _said(problem: Problem) -> str:
    return f"{problem.key}: {problem.message}" if problem.key else problem.message


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _label(keys: Sequence[SweepKey], values: Sequence[Any]) -> str:
    return ",".join(f"{k.short}={_shown(v)}" for k, v in zip(keys, values, strict=True))


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _same(a: SweepValue, b: SweepValue) -> bool:
    return type(a) is type(b) and a == b


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _overlap(a: leaf.Path, b: leaf.Path) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _shorts(keys: list[str]) -> dict[str, str]:
    """Each key's shortest dotted tail that no other key ends with."""
    out = {}
    for key in keys:
        words = re.split(r"\.", key)
        for n in range(1, len(words) + 1):
            tail = ".".join(words[-n:])
            if not any(o != key and (o == tail or o.endswith("." + tail)) for o in keys):
                out[key] = tail
                break
        else:
            out[key] = key
    return out
