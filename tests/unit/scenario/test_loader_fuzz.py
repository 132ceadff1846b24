"""Property: whatever is thrown at the loader, it returns a valid model or a clean ScenarioError."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import ScenarioError
from orchestrator.scenario.loader import parse_scenario
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.yamlpos import load_located

ROOT = Path(__file__).resolve().parents[3]
SEEDS = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "scenarios").glob("*.yaml"))]

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["10.77.0.10", "2s", "-1s", "server:7000", "ETIMEDOUT", ">=3", "kill", "10%", "x" * 300]),
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        targets = [p for p in paths(doc) if p]
        if not targets:
            break
        path = draw(st.sampled_from(targets))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            key = draw(st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.none()))
            parent[key] = draw(values)
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_scenarios_load_or_fail_cleanly(doc: Any) -> None:
    try:
        text = yaml.safe_dump(doc)
    except yaml.YAMLError:
        return
    try:
        result = parse_scenario(load_located(text), "fuzz.yaml")
    except ScenarioError as exc:
        assert exc.problems, "a ScenarioError always names at least one problem"
        for problem in exc.problems:
            assert problem.file == "fuzz.yaml" and problem.message
        return
    assert isinstance(result, Scenario)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_escapes_as_another_error(text: str) -> None:
    try:
        located = load_located(text)
    except yaml.YAMLError:
        return  # the loader turns these into ScenarioError with a line (load_scenario does it)
    with contextlib.suppress(ScenarioError):  # anything else fails the test
        parse_scenario(located, "fuzz.yaml")
