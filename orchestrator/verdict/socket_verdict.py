"""The socket timeline's part of a verdict, in one call for the judge: each host's samples read
back (cut at the end of the observation), every captured connection reconciled with them, the
`expect.sockets` checks, the notes, and the `sockets` section of verdict.json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.scenario.model import Scenario
from orchestrator.tcp.combine import Side
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.verdict.expectations import Check
from orchestrator.verdict.socket_checks import check_sockets
from orchestrator.verdict.socket_reconcile import (
    CapturedEnds,
    ConnectionSockets,
    Forger,
    Namer,
    no_ends,
    no_forger,
    reconcile,
    same_names,
)
from orchestrator.verdict.socket_timeline import SocketTimeline, load_timelines

# Docker's embedded DNS resolver listens in every namespace on a user-defined network: not the app's.
DOCKER_DNS = "127.0.0.11:"
MAX_AGREEING_NOTES = 3  # beyond a few connections, agreement is summed up in one note


@dataclass
class SocketVerdict:
    timelines: dict[str, SocketTimeline]
    connections: list[ConnectionSockets]
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self, t0: float | None) -> dict[str, Any]:
        return {
            "hosts": {
                host: {
                    "file": tl.file,
                    "samples": len(tl.ticks),
                    "interval_s": round(tl.interval_s, 4) if tl.interval_s is not None else None,
                    "boots": sorted({k.boot for k in tl.ticks}),
                    "listeners": _listeners(tl),
                }
                for host, tl in self.timelines.items()
            },
            "connections": [c.to_json(t0) for c in self.connections],
        }


def judge_sockets(
    scenario: Scenario,
    run_dir: Path,
    connections: Sequence[tuple[ConnectionSummary, Mapping[Side, str | None]]],
    t0: float | None,
    t_end: float | None,
    name: Namer = same_names,
    ends_of: CapturedEnds = no_ends,
    forger_of: Forger = no_forger,
) -> SocketVerdict:
    """`connections`: each with the scenario host at each end; `name`: how each host's kernel
    names a connection (another address behind a NAT); `forger_of`: the router that forged a
    segment, if one did."""
    timelines = {h: tl.until(t_end) for h, tl in load_timelines(run_dir, scenario.hosts).items()}
    for host, tl in timelines.items():
        tl.powered_off = off_at_end(scenario, host, tl, t_end)
    reconciled = [reconcile(c, hosts, timelines, t0, name, ends_of, forger_of) for c, hosts in connections]
    out = SocketVerdict(timelines, reconciled)
    out.checks = check_sockets(scenario, reconciled, t0)
    out.notes = _notes(out, t0)
    return out


# A sampler that stopped this long before the observation's end stopped with its kernel.
_STOPPED_S = 1.0


def off_at_end(scenario: Scenario, host: str, timeline: SocketTimeline, t_end: float | None) -> bool:
    """Whether `host` was off when the observation ended: a power_off in its timeline, and its
    sampler (which runs until teardown while the kernel lives) stopped well before the end.
    Measured: a server powered off 1 s into a run was last sampled then, its socket ESTAB, and
    read as "still had it ESTAB" at the end."""
    last = timeline.last_tick()
    if t_end is None or last is None or last.t > t_end - _STOPPED_S:
        return False
    return any(s.fault == "power_off" and s.host == host for s in scenario.timeline)


def _notes(v: SocketVerdict, t0: float | None) -> list[str]:
    if not v.timelines:
        return []
    intervals = [tl.interval_s for tl in v.timelines.values() if tl.interval_s is not None]
    every = f"every {min(intervals):.2f} s" if intervals else "sampled"
    out: list[str] = []
    agreeing = 0
    many = len(v.connections) > MAX_AGREEING_NOTES
    for c in v.connections:
        told = [f for f in c.findings if f.kind != "agrees" or not many]
        # Half-open is the kernels' own word on the connection's end, no difference with its packets.
        agreeing += not any(f.kind == "differs" for f in c.findings)
        for f in told:
            word = {"agrees": "agrees", "differs": "DIFFERS", "half-open": "half-open"}[f.kind]
            where = f" ({', '.join(f.evidence[:2])})" if f.evidence else ""
            out.append(f"kernel sockets (ss {every}), {c.client} -> {c.server}, {word}: {f.text}{where}")
    if many:
        out.append(
            f"kernel sockets (ss {every}): no difference with the captures on {agreeing} of "
            f"{len(v.connections)} connections"
        )
    if not v.connections:
        out.append(f"kernel sockets (ss {every}): no captured connection to compare with")
    return out


def _listeners(tl: SocketTimeline) -> list[dict[str, Any]]:
    """Each listener: its backlog and the fullest its accept queue got (and when)."""
    out = []
    for series in tl.listeners():
        if series.local.startswith(DOCKER_DNS):
            continue
        top = max(series.samples, key=lambda s: s.recv_q)
        out.append(
            {
                "local": series.local,
                "backlog": top.send_q,
                "max_accept_queue": top.recv_q,
                "at": top.t,
                "line": top.line,
            }
        )
    return out
