"""An app step needs its app in a state it can take it in: refused before Docker where the
timeline's order is known. Measured on the engine (20.10, scratch scenario u11): a second pause
of a paused app failed mid-run with 409 "is already paused", an unpause of a running one with
500 "is not paused", and a kill after the host's power_off had no app left to signal (the
verdict's timeline check said only "AssertionError: "); each run then proved nothing about that
step. A stop or a kill of a paused app worked (the client's FIN), so both are allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.scenario.loader import load_scenario
from tests.unit.scenario.test_loader import GOOD, problems, write


def _with(steps: str) -> str:
    head, _, rest = GOOD.partition("timeline:\n")
    return head + "timeline:\n" + steps + rest[rest.index("expect:") :]


@pytest.mark.parametrize(
    ("steps", "needle"),
    [
        (
            "  - {at: 1s, fault: pause, host: server}\n  - {at: 2s, fault: pause, host: server}\n",
            "timeline[1].fault: pause of server's app at 2s, which is paused then "
            "(timeline[0]: pause at 1s): it needs it running",
        ),
        (
            "  - {at: 1s, fault: unpause, host: client}\n",
            "timeline[0].fault: unpause of client's app at 1s, which is running then: it needs it paused",
        ),
        (
            "  - {at: 1s, fault: power_off, host: server}\n  - {at: 2s, fault: kill, host: server}\n",
            "timeline[1].fault: kill of server's app at 2s, which is powered off then "
            "(timeline[0]: power_off at 1s): it needs it running or paused",
        ),
        (
            "  - {after: client.connected, at: 1s, fault: kill, host: server}\n"
            "  - {after: client.connected, at: 2s, fault: stop, host: server}\n",
            "timeline[1].fault: stop of server's app at 2s after client.connected, which is no "
            "longer running then (timeline[0]: kill at 1s)",
        ),
    ],
)
def test_app_steps_out_of_order_are_refused(tmp_path: Path, steps: str, needle: str) -> None:
    found = problems(tmp_path, _with(steps))
    assert any(needle in p for p in found), found


@pytest.mark.parametrize(
    "steps",
    [
        "  - {at: 1s, fault: pause, host: server}\n  - {at: 2s, fault: unpause, host: server}\n"
        "  - {at: 3s, fault: pause, host: server}\n",
        "  - {at: 1s, fault: pause, host: server}\n  - {at: 2s, fault: kill, host: server}\n",
        "  - {at: 1s, fault: kill, host: server}\n  - {at: 2s, fault: restart, host: server}\n"
        "  - {at: 3s, fault: stop, host: server, grace: 1s}\n",
        "  - {at: 1s, fault: power_off, host: server}\n  - {at: 2s, fault: power_on, host: server}\n"
        "  - {at: 3s, fault: kill, host: server}\n",
        # A signal that ends nothing leaves the app alive for the next kill.
        "  - {at: 1s, fault: kill, host: server, signal: SIGSTOP}\n  - {at: 2s, fault: kill, host: server}\n",
        # From different moments: the order is known only when they run.
        "  - {after: client.connected, at: 1s, fault: pause, host: server}\n"
        "  - {at: 3s, fault: pause, host: server}\n",
    ],
)
def test_app_steps_that_can_happen_load(tmp_path: Path, steps: str) -> None:
    assert load_scenario(write(tmp_path, _with(steps))).timeline
