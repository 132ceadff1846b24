"""A power_on needs its host off: refused before Docker where the timeline's order is known.
Measured on the engine: a power_on of a host that was only disconnected booted a second host
container with the same address and MAC; the new kernel reset the client's connection while
the old one, still running, listed it ESTAB."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.scenario.loader import load_scenario
from tests.unit.scenario.test_loader import GOOD, problems, write


def _with(steps: str) -> str:
    head, _, rest = GOOD.partition("timeline:\n")
    return head + "timeline:\n" + steps + rest[rest.index("expect:") :]


def test_a_power_on_with_no_power_off_is_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        _with("  - {at: 1s, fault: disconnect, host: server}\n  - {at: 3s, fault: power_on, host: server}\n"),
    )
    assert any(
        "timeline[1].fault: power_on of server, which no step powers off: it is on already" in p
        for p in found
    ), found


@pytest.mark.parametrize(
    ("steps", "needle"),
    [
        (
            "  - {after: client.connected, at: 3s, fault: power_off, host: server}\n"
            "  - {after: client.connected, at: 1s, fault: power_on, host: server}\n",
            "timeline[1].fault: power_on of server at 1s after client.connected, which is on then",
        ),
        (
            "  - {at: 1s, fault: power_off, host: server}\n  - {at: 3s, fault: power_off, host: server}\n",
            "timeline[1].fault: power_off of server at 3s, which is off then (timeline[0]: power_off at 1s)",
        ),
    ],
)
def test_power_steps_out_of_order_are_refused(tmp_path: Path, steps: str, needle: str) -> None:
    found = problems(tmp_path, _with(steps))
    assert any(needle in p for p in found), found


@pytest.mark.parametrize(
    ("steps", "needle"),
    [
        (
            "  - {after: client.connected, at: 1s, fault: power_off, host: server}\n"
            "  - {at: 3s, fault: power_on, host: server}\n  - {at: 5s, fault: power_on, host: server}\n",
            "timeline[2].fault: server has 1 power_off and 2 power_on steps: in no order do they alternate",
        ),
        (
            "  - {after: client.connected, at: 1s, fault: power_off, host: server}\n"
            "  - {at: 3s, fault: power_off, host: server}\n",
            "timeline[1].fault: server has 2 power_off and 0 power_on steps",
        ),
    ],
)
def test_power_steps_from_different_moments_that_cannot_alternate_are_refused(
    tmp_path: Path, steps: str, needle: str
) -> None:
    found = problems(tmp_path, _with(steps))
    assert any(needle in p for p in found), found


@pytest.mark.parametrize(
    "steps",
    [
        "  - {at: 1s, fault: power_off, host: server}\n  - {at: 3s, fault: power_on, host: server}\n",
        # Listed out of order from the same event: they run by their times.
        "  - {after: client.connected, at: 3s, fault: power_on, host: server}\n"
        "  - {after: client.connected, at: 1s, fault: power_off, host: server}\n",
        # From different moments: the order is known only when they run (the backend refuses then).
        "  - {after: client.connected, at: 1s, fault: power_off, host: server}\n"
        "  - {at: 1s, fault: power_on, host: server}\n",
        # Two cycles from different moments: one order alternates.
        "  - {after: client.connected, at: 1s, fault: power_off, host: server}\n"
        "  - {at: 3s, fault: power_on, host: server}\n"
        "  - {after: client.connected, at: 5s, fault: power_off, host: server}\n"
        "  - {at: 9s, fault: power_on, host: server}\n",
        # Powered off for good, after one cycle.
        "  - {after: client.connected, at: 1s, fault: power_off, host: server}\n"
        "  - {at: 3s, fault: power_on, host: server}\n  - {at: 6s, fault: power_off, host: server}\n",
    ],
)
def test_power_steps_that_can_happen_are_accepted(tmp_path: Path, steps: str) -> None:
    load_scenario(write(tmp_path, _with(steps)))
