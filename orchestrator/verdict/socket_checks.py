"""`expect.sockets`: each item checked against what the host's kernel listed over the run.

The evidence names the sample lines (`client.sockets.jsonl:412`) that decide it. Which
connections an item is about comes from the captures (every connection of its host, narrowed by
`peer` and `port`); a selection that matches none is a FAIL that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.scenario.model import Scenario
from orchestrator.scenario.socket_expect import SocketExpect
from orchestrator.tcp.combine import SIDES, Side
from orchestrator.verdict.expectations import EVIDENCE_FRAMES, Check, at
from orchestrator.verdict.socket_reconcile import ConnectionSockets, SideSockets
from orchestrator.verdict.socket_timeline import GONE


@dataclass(frozen=True)
class Outcome:
    """One connection against one item."""

    ok: bool
    observed: str
    evidence: list[str]


def check_sockets(
    scenario: Scenario, connections: Sequence[ConnectionSockets], t0: float | None
) -> list[Check]:
    return [_check(f"sockets[{i}]", want, connections, t0) for i, want in enumerate(scenario.expect.sockets)]


def _check(
    name: str, want: SocketExpect, connections: Sequence[ConnectionSockets], t0: float | None
) -> Check:
    expected = want.describe()
    chosen = [(c, side) for c in connections if (side := _side(c, want)) is not None]
    if not chosen:
        return Check(name, False, expected, f"no connection of {want.host} in the captures matches")
    outcomes = [_outcome(want, c.sides.get(side), c, t0) for c, side in chosen]
    passed = all(o.ok for o in outcomes) if want.of == "each" else any(o.ok for o in outcomes)
    if len(outcomes) == 1:
        observed = outcomes[0].observed
    else:
        shown = next((o for o in outcomes if o.ok != passed or not o.ok), outcomes[0])
        observed = f"{sum(o.ok for o in outcomes)} of {len(outcomes)} connections; e.g. {shown.observed}"
    evidence = [e for o in sorted(outcomes, key=lambda o: o.ok == passed) for e in o.evidence]
    return Check(name, passed, expected, observed, evidence[:EVIDENCE_FRAMES])


def _side(c: ConnectionSockets, want: SocketExpect) -> Side | None:
    side = next((s for s in SIDES if c.hosts.get(s) == want.host), None)
    if side is None:
        return None
    other = c.hosts.get("server" if side == "client" else "client")
    if want.peer is not None and other != want.peer:
        return None
    if want.port is not None and want.port not in (_port(c.client), _port(c.server)):
        return None
    return side


def _outcome(want: SocketExpect, view: SideSockets | None, c: ConnectionSockets, t0: float | None) -> Outcome:
    ends = f"{c.client} -> {c.server}"
    if view is None:
        return Outcome(False, f"no socket samples from {want.host} ({ends})", [])
    samples = view.samples()
    story = _story(view, t0)
    alive = view.alive_at_end()
    gone = view.series[-1].ended if view.series else None
    gone_ref = [f"{view.timeline.file}:{gone.line}"] if gone is not None else []
    if want.retrans is not None:
        top = max(samples, key=lambda s: s.retrans_total) if samples else None
        n = top.retrans_total if top else 0
        return Outcome(want.retrans.contains(n), f"{n} ({ends})", [view.where(top)] if top else [])
    if want.timer is not None:
        hit = next((s for s in samples if s.timer == want.timer), None)
        if hit is None:
            timers = sorted({s.timer for s in samples} - {"none"}) or ["none"]
            return Outcome(False, f"timers seen: {', '.join(timers)} ({ends})", [])
        return Outcome(True, f"{hit.describe()} at {at(hit.t, t0)}", [view.where(hit)])
    target = want.reaches or want.never or want.state
    assert target is not None
    if target == GONE:
        seen_gone = not alive and bool(samples)
        if want.never is not None:
            return Outcome(not seen_gone, story, gone_ref)
        if want.during == "throughout":
            return Outcome(not samples, story, [view.where(samples[0])] if samples else [])
        return Outcome(seen_gone, story, gone_ref)
    hits = [s for s in samples if s.state == target]
    if want.never is not None:
        return Outcome(not hits, story, [view.where(hits[0])] if hits else [])
    if want.reaches is not None:
        return Outcome(bool(hits), story, [view.where(hits[0])] if hits else [])
    during = want.during or "until-end"
    if during == "end":
        state = view.end_state() if samples else GONE
        last = [view.where(samples[-1])] if samples else []
        return Outcome(state == target, f"{state} at the end: {story}", last + gone_ref)
    if not hits:
        return Outcome(False, f"never {target}: {story}", [])
    start = samples.index(hits[0]) if during == "until-end" else 0
    other = next((s for s in samples[start:] if s.state != target), None)
    if other is not None:
        return Outcome(False, story, [view.where(hits[0]), view.where(other)])
    if not alive:
        return Outcome(False, story, [view.where(hits[0]), *gone_ref])
    return Outcome(True, story, [view.where(samples[start]), view.where(samples[-1])])


def _story(view: SideSockets, t0: float | None) -> str:
    """The socket's states in order: "ESTAB +0.196s → none +14.502s (still there at the end)"."""
    steps = [
        f"{t.state}{' (with its kernel)' if t.with_kernel else ''} {at(t.t, t0)}" for t in view.transitions()
    ]
    if not steps:
        return f"never listed in {view.host}'s samples"
    return " → ".join(steps) + (" (to the end)" if view.alive_at_end() else "")


def _port(endpoint: str) -> int:
    tail = endpoint.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0
