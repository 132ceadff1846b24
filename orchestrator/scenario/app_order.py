"""A host's app steps in an order that can happen: an app is paused only while it runs, unpaused
only while paused, killed or stopped only while alive, and none of them while its host is
powered off. Out of order, the engine refuses the step mid-run (measured: a second pause, 409
"already paused"; an unpause of a running app, 500 "is not paused"; a kill after power_off, no
app left at all), and the run proves nothing about it; so it
is refused before Docker, where the order is known: every life step of the host counts from the
same moment (the same `after`, or none). The power steps' own order is `power_order`'s to say."""

from __future__ import annotations

from typing import Literal

from orchestrator.scenario.model import RouterHost, Scenario
from orchestrator.scenario.steps import NOT_FATAL, Kill, Step

Path = tuple[str | int, ...]
State = Literal["running", "paused", "gone", "off"]
_LIFE = frozenset({"kill", "stop", "restart", "pause", "unpause", "power_off", "power_on"})
# What each app step needs the app to be, and what it leaves.
_NEEDS: dict[str, frozenset[State]] = {
    "kill": frozenset({"running", "paused"}),
    "stop": frozenset({"running", "paused"}),
    "restart": frozenset({"running", "paused", "gone"}),
    "pause": frozenset({"running"}),
    "unpause": frozenset({"paused"}),
}
_LEAVES: dict[str, State] = {
    "kill": "gone",
    "stop": "gone",
    "restart": "running",
    "pause": "paused",
    "unpause": "running",
    "power_off": "off",
    "power_on": "running",
}
_SAID: dict[State, str] = {
    "running": "running",
    "paused": "paused",
    "gone": "no longer running",
    "off": "powered off",
}


def app_problems(scenario: Scenario) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    for host in scenario.hosts:
        mine = [(i, s) for i, s in enumerate(scenario.timeline) if s.host == host and s.fault in _LIFE]
        if isinstance(scenario.hosts[host], RouterHost) or len({s.after for _, s in mine}) != 1:
            continue  # a router runs no app (said elsewhere); from several moments: order unknown
        problems += _out_of_order(host, mine)
    return problems


def _out_of_order(host: str, mine: list[tuple[int, Step]]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    state: State = "running"
    before: tuple[int, Step] | None = None
    for i, step in sorted(mine, key=lambda e: (e[1].at, e[0])):
        needs = _NEEDS.get(step.fault)
        if needs is not None and state not in needs:
            found.append((("timeline", i, "fault"), _refusal(host, step, state, before)))
            continue  # the engine refuses it: the app stays as it was
        # A signal that ends nothing (SIGSTOP, SIGCONT...) leaves the app as it was.
        if not (isinstance(step, Kill) and step.signal in NOT_FATAL):
            state = _LEAVES[step.fault]
        before = (i, step)
    return found


def _refusal(host: str, step: Step, state: State, before: tuple[int, Step] | None) -> str:
    when = f"{step.at:g}s" + (f" after {step.after}" if step.after else "")
    since = f" (timeline[{before[0]}]: {before[1].fault} at {before[1].at:g}s)" if before else ""
    wanted = " or ".join(_SAID[s] for s in _SAID if s in _NEEDS[step.fault])
    return (
        f"{step.fault} of {host}'s app at {when}, which is {_SAID[state]} then{since}: it needs it {wanted}"
    )
