"""A host's power steps in an order that can happen: a power_on needs the host off. A power_on
of a host that is on booted a second host container with the same address and MAC beside the
first (measured: both kernels answered, the old one still listing the connection), so it is
refused where the timeline's order is known: the steps of one host that count from the same
moment (the same `after`, or none). Steps from different moments are refused only when their
counts allow no order at all."""

from __future__ import annotations

from itertools import groupby

from orchestrator.scenario.model import Scenario
from orchestrator.scenario.steps import Step

Path = tuple[str | int, ...]
_POWER = ("power_off", "power_on")


def power_problems(scenario: Scenario) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    steps = [(i, s) for i, s in enumerate(scenario.timeline) if s.fault in _POWER]
    for host, of_host in groupby(sorted(steps, key=lambda e: e[1].host), key=lambda e: e[1].host):
        mine = list(of_host)
        if not any(s.fault == "power_off" for _, s in mine):
            problems += [
                (("timeline", i, "fault"), f"power_on of {host}, which no step powers off: it is on already")
                for i, _ in mine
            ]
            continue
        if len({s.after for _, s in mine}) > 1:
            # Steps from different moments: their order is known only when they run, but no order
            # alternates off, on, off... with more power_ons than power_offs, or two offs more.
            problems += _miscounted(host, mine)
            continue
        on, before = True, None
        for i, s in sorted(mine, key=lambda e: (e[1].at, e[0])):
            if (s.fault == "power_on") == on:
                state = "on" if on else "off"
                since = f" (timeline[{before[0]}]: {before[1].fault} at {before[1].at:g}s)" if before else ""
                when = f"{s.at:g}s" + (f" after {s.after}" if s.after else "")
                problems.append(
                    (("timeline", i, "fault"), f"{s.fault} of {host} at {when}, which is {state} then{since}")
                )
            on, before = s.fault == "power_on", (i, s)
    return problems


def _miscounted(host: str, mine: list[tuple[int, Step]]) -> list[tuple[Path, str]]:
    offs = sum(s.fault == "power_off" for _, s in mine)
    ons = len(mine) - offs
    if offs - 1 <= ons <= offs:
        return []
    i = mine[-1][0]  # the last in the file: one of the excess, in whatever order they run
    return [
        (
            ("timeline", i, "fault"),
            f"{host} has {offs} power_off and {ons} power_on steps: in no order do they "
            "alternate (a power_on needs the host off, a power_off needs it on)",
        )
    ]
