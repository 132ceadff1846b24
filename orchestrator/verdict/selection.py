"""Checks of `expect.connections`: pick the connections, then count how many show the facts.

Each entry is one check, `connections[i]`: PASS when the selection finds connections (as many
as `count` says, if given) and enough of them (each, any, or the `match` count) show every
fact. A selection that finds nothing is a FAIL that says so, never a silent pass.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.scenario.model import Scenario
from orchestrator.scenario.selection import ConnectionExpect
from orchestrator.scenario.units import CountRange
from orchestrator.tcp.connection import ConnectionSummary, SideCounts
from orchestrator.verdict.connections import JudgedConnection
from orchestrator.verdict.expectations import Check, ref

EVIDENCE = 6


def check_selections(
    scenario: Scenario, connections: list[JudgedConnection], t0: float | None
) -> list[Check]:
    return [_check(i, want, connections, t0) for i, want in enumerate(scenario.expect.connections)]


def select(want: ConnectionExpect, connections: list[JudgedConnection]) -> list[JudgedConnection]:
    s = want.select
    found = [
        c
        for c in connections
        if (s.client is None or c.hosts["client"] == s.client)
        and (s.server is None or c.hosts["server"] == s.server)
        and (s.port is None or c.summary.server.rsplit(":", 1)[-1] == str(s.port))
    ]
    if s.order is not None:
        found = found[s.order - 1 : s.order]
    return found


def _check(i: int, want: ConnectionExpect, connections: list[JudgedConnection], t0: float | None) -> Check:
    name = f"connections[{i}]"
    facts = _facts(want)
    expected = _expected(want, facts)
    chosen = select(want, connections)
    if not chosen:
        return Check(
            name, False, expected, f"the selection matched none of the {len(connections)} connections"
        )
    misses: list[str] = []
    good = 0
    for c in chosen:
        wrong = [f"{label} {seen}" for label, ok, seen in (test(c.summary) for test in facts) if not ok]
        if wrong:
            misses.append(f"{c.summary.client} -> {c.summary.server}: " + ", ".join(wrong))
        else:
            good += 1
    n = len(chosen)
    enough = (
        good == n if want.match == "each" else good >= 1 if want.match == "any" else want.match.contains(good)
    )
    sized = want.count is None or want.count.contains(n)
    observed = f"{n} selected, {good} show it"
    evidence = misses[:EVIDENCE] + ([f"... {len(misses) - EVIDENCE} more"] if len(misses) > EVIDENCE else [])
    if not evidence:
        evidence = [
            f"{c.summary.client} -> {c.summary.server} from {ref(c.summary.first_frame, t0)}" for c in chosen
        ][:EVIDENCE]
    return Check(name, enough and sized, expected, observed, evidence)


Fact = Callable[[ConnectionSummary], tuple[str, bool, str]]


def _facts(want: ConnectionExpect) -> list[Fact]:
    out: list[Fact] = []
    for key in ("handshake", "close", "initiator"):
        wanted = getattr(want, key)
        if wanted is not None:
            out.append(_value(key, wanted))
    if want.rst_from is not None:
        out.append(_value("rst_from", want.rst_from, lambda c: c.rst_from or "none"))
    for key in ("retransmissions", "keepalive_probes", "zero_window"):
        for side, bound in getattr(want, key).items():
            out.append(_count(key, side, bound))
    return out


def _value(key: str, wanted: str, read: Callable[[ConnectionSummary], str | None] | None = None) -> Fact:
    def test(c: ConnectionSummary) -> tuple[str, bool, str]:
        seen = read(c) if read is not None else getattr(c, key)
        return f"{key}:", seen == wanted, str(seen)

    return test


def _count(key: str, side: str, bound: CountRange) -> Fact:
    def test(c: ConnectionSummary) -> tuple[str, bool, str]:
        counts: SideCounts = getattr(c, key)
        n = counts.client if side == "client" else counts.server
        return f"{key}.{side}:", bound.contains(n), str(n)

    return test


def _expected(want: ConnectionExpect, facts: list[Fact]) -> str:
    s = want.select
    where = ", ".join(
        f"{k}={v}"
        for k, v in (("client", s.client), ("server", s.server), ("port", s.port), ("order", s.order))
        if v
    )
    what = []
    for key in ("handshake", "close", "initiator", "rst_from"):
        if getattr(want, key) is not None:
            what.append(f"{key} {getattr(want, key)}")
    for key in ("retransmissions", "keepalive_probes", "zero_window"):
        what += [f"{key}.{side} {bound}" for side, bound in getattr(want, key).items()]
    how = want.match if isinstance(want.match, str) else f"{want.match} of them"
    size = f" ({want.count} connections)" if want.count is not None else ""
    return (
        f"{how} of [{where or 'all'}]{size}: {', '.join(what) or 'found'}"
        if facts
        else f"[{where or 'all'}]{size}"
    )
