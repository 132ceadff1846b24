"""The verdict of a run: analyse what each kernel sent, find the connection, check each expectation."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.kernel.predict import KernelPrediction, capture_end, predict_connection, prediction_json
from orchestrator.kernel.settings import settings_of_host
from orchestrator.kernel.timers import backoff_schedule
from orchestrator.pcap.icmp import IcmpError
from orchestrator.pcap.reader import TcpPacket, read_tcp
from orchestrator.run.records import AgentEvent, FaultRecord, NotApplied
from orchestrator.scenario.model import Scenario
from orchestrator.tcp.analysis import analyze
from orchestrator.tcp.combine import SIDES, Side, combine, find_same
from orchestrator.tcp.connection import ConnectionSummary, FrameRef
from orchestrator.tcp.merge import merge_sent
from orchestrator.verdict import expectations as c
from orchestrator.verdict.counters import counter_checks, counter_notes
from orchestrator.verdict.outcome import AppOutcome, app_outcome, connected_endpoint, connected_ends
from orchestrator.verdict.paths import PathView, challenge_checks, path_view
from orchestrator.verdict.sockets import socket_state


@dataclass
class Verdict:
    scenario: str
    checks: list[c.Check]
    connection: ConnectionSummary | None
    apps: dict[str, AppOutcome]
    predictions: dict[str, KernelPrediction]
    faults: list[FaultRecord]
    t0: float | None
    notes: list[str] = field(default_factory=list)
    paths: dict[str, Any] | None = None  # through routers: joined tuples, where packets died

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def passed_count(self) -> int:
        return sum(check.passed for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "passed": self.passed,
            "t0": self.t0,
            "checks": [asdict(check) for check in self.checks],
            "connection": asdict(self.connection) if self.connection else None,
            "apps": {k: asdict(v) for k, v in self.apps.items()},
            "predictions": {k: prediction_json(v) for k, v in self.predictions.items()},
            "faults": [asdict(f) for f in self.faults],
            "notes": self.notes,
            **({"paths": self.paths} if self.paths is not None else {}),
        }


@dataclass
class RunRecord:
    """Everything a run observed, as the verdict takes it."""

    run_dir: Path
    captures: dict[str, list[str]]
    events: list[AgentEvent]
    faults: list[FaultRecord]
    t0: float | None
    sockets: dict[str, str] = field(default_factory=dict)  # host -> `ss -tanoi` at the end
    not_applied: list[NotApplied] = field(default_factory=list)  # steps that never ran, and why
    t_end: float | None = None  # when the observation ended


def judge(scenario: Scenario, record: RunRecord) -> Verdict:
    events, faults, t0 = record.events, record.faults, record.t0
    client_host = scenario.hosts_with_role("client")[0]
    server_host = scenario.hosts_with_role("server")[0]
    # Through routers, the connection's tuples are joined across NAT (the client's terms), and
    # the routers' own captures say where packets died; without routers this changes nothing.
    paths = path_view(
        scenario, record.run_dir, record.captures, record.sockets, connected_ends(client_host, events)
    )
    sources = paths.sources
    connections = analyze(paths.merged(merge_sent(sources)))
    conn = _pick(
        connections, connected_endpoint(client_host, events), str(scenario.hosts[client_host].address)
    )
    side_host: dict[Side, str] = {"client": client_host, "server": server_host}
    apps = {name: app_outcome(name, events) for name in scenario.apps()}
    predictions: dict[str, KernelPrediction] = {}
    if conn is not None:
        views = {side: _own_view(record, side_host[side], conn, paths) for side in SIDES}
        settings = {side: settings_of_host(scenario.apps()[side_host[side]]) for side in SIDES}
        for side, (view, icmp) in views.items():
            # Each kernel's timers run on what reached it: predict from its own capture.
            found = predict_connection(
                view or conn, settings.__getitem__, icmp, record.t_end or capture_end([view or conn])
            )
            for p in found:
                if p.side == side:
                    predictions[side_host[side]] = p
        conn = combine(conn, {side: view for side, (view, _) in views.items()})
    verdict = Verdict(scenario.name, [], conn, apps, predictions, faults, t0)
    if conn is None:
        verdict.notes.append(f"no TCP connection from {client_host} was captured")
    else:
        verdict.notes.extend(conn.notes)
    if paths.routers:
        verdict.paths = paths.to_json(t0)
        verdict.notes += paths.notes(t0)
    verdict.notes += [model_note(host, p, t0) for host, p in predictions.items()]
    verdict.notes += counter_notes(side_host, record.sockets)
    # A step that failed or never ran makes the run prove nothing about it: say so first.
    verdict.checks = timeline_checks(faults, record.not_applied, t0)
    verdict.checks += _check_all(scenario, conn, apps, predictions, side_host, t0)
    verdict.checks += _check_end_state(scenario, conn, record, side_host, paths)
    verdict.checks += paths.checks(t0)
    verdict.checks += counter_checks(scenario, side_host, record.sockets)
    verdict.checks += challenge_checks(scenario, record.run_dir, record.captures, side_host, t0)
    for name, want in scenario.expect.apps.items():
        verdict.checks += c.check_reports(name, want.reports, events)
    return verdict


def model_note(host: str, p: KernelPrediction, t0: float | None) -> str:
    """The kernel model's word on how a host's connection ends, next to what the capture shows."""
    end = "ends it at once" if p.predicted_s == 0 else f"ends it at {c.at(p.at, t0)}"
    return f"kernel model, {host}: {p.kind} {end}, the app told {p.app_error} ({p.basis}); {p.observed}"


def timeline_checks(
    faults: list[FaultRecord], not_applied: list[NotApplied], t0: float | None
) -> list[c.Check]:
    """One FAIL per step that failed to apply or never ran (`timeline[i]`), with the reason."""
    out = [
        c.Check(
            f"timeline[{f.index}]",
            False,
            f"{f.fault} on {f.host} applied",
            f"failed: {f.error}",
            [f"timeline.jsonl: asked at {c.at(f.t, t0)}"],
        )
        for f in faults
        if f.error is not None
    ]
    out += [
        c.Check(f"timeline[{n.index}]", False, f"{n.fault} on {n.host} applied", f"not applied: {n.reason}")
        for n in not_applied
    ]
    return sorted(out, key=lambda check: int(check.name[len("timeline[") : -1]))


def _own_view(
    record: RunRecord, host: str, conn: ConnectionSummary, through: PathView
) -> tuple[ConnectionSummary | None, list[IcmpError]]:
    """The connection as `host`'s own captures show it, and the ICMP errors they hold."""
    paths = [record.run_dir / pcap for pcap in record.captures.get(host, [])]
    if not paths:
        return None, []
    captures = [read_tcp(path) for path in paths]
    found = find_same(analyze(through.translated(heapq.merge(*captures, key=lambda p: p.time_ns))), conn)
    return found, [e for cap in captures for e in cap.icmp_errors]


def _check_end_state(
    scenario: Scenario,
    conn: ConnectionSummary | None,
    record: RunRecord,
    side_host: dict[Side, str],
    through: PathView,
) -> list[c.Check]:
    e = scenario.expect
    out: list[c.Check] = []
    for side, want in e.socket_at_end.items():
        host = side_host[side]
        if conn is None:
            out.append(c.Check(f"socket_at_end.{side}", False, want, "no connection captured"))
            continue
        local, peer = (conn.client, conn.server) if side == "client" else (conn.server, conn.client)
        local, peer = through.seen_by(host, local, peer)  # behind a NAT, the kernel names it otherwise
        state = socket_state(record.sockets.get(host, ""), local, peer)
        out.append(c.check_value(f"socket_at_end.{side}", want, state, [f"{host}.ss.txt: {local} -> {peer}"]))
    if e.packets_after_fault is not None:
        applied = [f.in_effect for f in record.faults if f.error is None]
        if conn is None or not applied:
            out.append(
                c.Check("packets_after_fault", False, str(e.packets_after_fault), "no connection or no fault")
            )
        else:
            frames = packets_after(through.merged(merge_sent(through.sources)), conn, min(applied))
            out.append(
                c.Check(
                    "packets_after_fault",
                    e.packets_after_fault.contains(len(frames)),
                    str(e.packets_after_fault),
                    str(len(frames)),
                    c.refs(frames, record.t0) or [f"nothing after +{min(applied) - (record.t0 or 0):.3f}s"],
                )
            )
    return out


def packets_after(packets: Iterable[TcpPacket], conn: ConnectionSummary, t: float) -> list[FrameRef]:
    ends = {conn.client, conn.server}
    return [
        FrameRef(p.file, p.frame, p.time)
        for p in packets
        if p.time >= t and f"{p.src}:{p.sport}" in ends and f"{p.dst}:{p.dport}" in ends
    ]


def _pick(
    connections: list[ConnectionSummary], endpoint: str | None, client_ip: str
) -> ConnectionSummary | None:
    if endpoint is not None:
        for conn in connections:
            if endpoint in (conn.client, conn.server):
                return conn
    for conn in connections:
        if conn.client.rsplit(":", 1)[0] == client_ip or conn.server.rsplit(":", 1)[0] == client_ip:
            return conn
    return None


def _check_all(
    scenario: Scenario,
    conn: ConnectionSummary | None,
    apps: dict[str, AppOutcome],
    predictions: dict[str, KernelPrediction],
    side_host: dict[Side, str],
    t0: float | None,
) -> list[c.Check]:
    e = scenario.expect
    tol = e.tolerance
    out: list[c.Check] = []
    packet_checks = any(
        [
            e.handshake,
            e.close,
            e.initiator,
            e.close_packets,
            e.rst_from,
            e.backoff,
            e.keepalive_timing,
            e.retransmissions,
            e.keepalive_probes,
            e.zero_window,
        ]
    )
    if conn is None:
        if packet_checks:
            out.append(c.Check("connection", False, "a captured connection", "none captured"))
    else:
        if e.handshake:
            out.append(
                c.check_value("handshake", e.handshake, conn.handshake, [f"SYN {c.ref(conn.syn, t0)}"])
            )
        if e.close:
            out.append(c.check_value("close", e.close, conn.close, c.check_close_evidence(conn, t0)))
        if e.initiator:
            out.append(
                c.check_value("initiator", e.initiator, conn.initiator, c.check_close_evidence(conn, t0))
            )
        if e.close_packets:
            shown = str(conn.close_packets) if conn.close_packets else None
            expected = " or ".join(str(n) for n in e.close_packets)
            check = c.check_value("close_packets", expected, shown, c.check_close_evidence(conn, t0))
            check.passed = conn.close_packets in e.close_packets
            out.append(check)
        if e.rst_from:
            rsts = sorted([*conn.rsts.client, *conn.rsts.server], key=lambda f: f.time)
            out.append(c.check_value("rst_from", e.rst_from, conn.rst_from or "none", c.refs(rsts, t0)))
        out += c.check_counts(
            "retransmissions", e.retransmissions, conn.retransmissions, conn.retransmission_frames, t0
        )
        if e.backoff:
            sender = conn.backoff_from or "client"
            model = backoff_schedule(settings_of_host(scenario.apps()[side_host[sender]]).retries2, rto=0.21)
            out.append(c.check_backoff(conn, tol, model, t0))
        out += c.check_counts(
            "keepalive_probes", e.keepalive_probes, conn.keepalive_probes, conn.keepalive_frames, t0
        )
        if e.keepalive_timing:
            probes = conn.keepalive_probes
            prober: Side = "client" if probes.client >= probes.server else "server"
            s = settings_of_host(scenario.apps()[side_host[prober]])
            out.append(c.check_keepalive_timing(conn, s.keepalive_time, s.keepalive_intvl, tol, t0))
        out += c.check_counts("zero_window", e.zero_window, conn.zero_window, conn.zero_window_frames, t0)
    for name, want in e.apps.items():
        out += c.check_app(name, want, apps[name], predictions.get(name), tol, t0)
    return out
