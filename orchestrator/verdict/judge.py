"""The verdict of a run: analyse what each kernel sent, find the connection, check each expectation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.kernel.curve import rto_at_stamp
from orchestrator.kernel.predict import KernelPrediction, nearest_end, prediction_json
from orchestrator.kernel.settings import settings_of_host
from orchestrator.kernel.timers import TCP_RTO_MIN, backoff_schedule
from orchestrator.pcap.reader import TcpPacket
from orchestrator.run.records import AgentEvent, FaultRecord, NotApplied
from orchestrator.scenario.model import Scenario, socket_warnings
from orchestrator.tcp.analysis import analyze
from orchestrator.tcp.combine import Side
from orchestrator.tcp.connection import ConnectionSummary, FrameRef
from orchestrator.tcp.merge import merge_sent
from orchestrator.tcp.rst_notes import STATELESS_RST
from orchestrator.verdict import expectations as c
from orchestrator.verdict.capture_checks import capture_checks, tell_incomplete
from orchestrator.verdict.connections import (
    JudgedConnection,
    host_connection,
    host_views,
    judge_connections,
    main_connection,
)
from orchestrator.verdict.counters import counter_checks, counter_notes
from orchestrator.verdict.outcome import AppOutcome, app_outcome, connected_endpoint, connected_ends
from orchestrator.verdict.paths import PathView, challenge_checks, path_view
from orchestrator.verdict.programs import ProgramOutcome, program_checks, program_outcomes
from orchestrator.verdict.selection import check_selections
from orchestrator.verdict.socket_reconcile import no_ends
from orchestrator.verdict.socket_verdict import judge_sockets
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
    programs: dict[str, ProgramOutcome] = field(default_factory=dict)  # hosts running a user's program
    connections: list[JudgedConnection] = field(default_factory=list)  # every connection of the run
    sockets: dict[str, Any] = field(default_factory=dict)  # the kernels' socket timelines (socket_verdict)
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
            "programs": {k: asdict(v) for k, v in self.programs.items()},
            "connections": [c.to_json() for c in self.connections],
            "sockets": self.sockets,
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
    # Through routers, the client's connection's tuples are joined across NAT (in the client's
    # terms), and the routers' own captures say where packets died; without routers this
    # changes nothing.
    paths = path_view(
        scenario, record.run_dir, record.captures, record.sockets, connected_ends(client_host, events)
    )
    apps = {name: app_outcome(name, events) for name in scenario.apps()}
    own_captures = {host: files for host, files in record.captures.items() if host in apps}
    views = host_views(record.run_dir, own_captures, paths.translated)
    merged = analyze(paths.merged(merge_sent(paths.sources)))
    connections = judge_connections(scenario, merged, views, record.t_end)
    main = main_connection(connections, client_host, connected_endpoint(client_host, events))
    side_host: dict[Side, str] = {"client": client_host, "server": server_host}
    # Each host's prediction is its own connection's: the one its app's end was about.
    predictions: dict[str, KernelPrediction] = {}
    for name, app in apps.items():
        own = host_connection(connections, name, app.endpoint or connected_endpoint(name, events))
        side = own.host_side(name) if own is not None else None
        if own is not None and side is not None and side in own.predictions:
            predictions[name] = own.predictions[side]
    conn = main.summary if main is not None else None
    verdict = Verdict(scenario.name, [], conn, apps, predictions, faults, t0, connections=connections)
    if conn is None:
        verdict.notes.append(f"no TCP connection from {client_host} was captured")
    else:
        verdict.notes.extend(_retold(conn, paths, side_host, t0))
        if len(connections) > 1:
            verdict.notes.append(
                f"{len(connections)} connections in this run: the expectations outside `connections:` "
                f"are about {conn.client} -> {conn.server} ({client_host}'s); each is in verdict.json"
            )
    if paths.routers:
        verdict.paths = paths.to_json(t0)
        verdict.notes += paths.notes(t0, _first_rst(conn))
    reporting = {e.host for e in events}  # hosts whose apps' events are known
    verdict.notes += [
        model_note(host, p, t0, apps[host] if host in reporting else None) for host, p in predictions.items()
    ]
    verdict.notes += counter_notes(side_host, record.sockets)
    verdict.notes += [f"{host}: {text}" for host, text in socket_warnings(scenario)]
    # A step that failed or never ran makes the run prove nothing about it: say so first.
    verdict.checks = timeline_checks(faults, record.not_applied, t0)
    verdict.checks += capture_checks(record.run_dir, list(record.captures))
    verdict.checks += _check_all(scenario, conn, apps, predictions, side_host, t0)
    verdict.checks += _check_end_state(scenario, conn, record, side_host, paths)
    verdict.checks += check_selections(scenario, connections, t0)
    verdict.checks += paths.checks(t0)
    verdict.checks += counter_checks(scenario, side_host, record.sockets)
    verdict.checks += challenge_checks(scenario, record.run_dir, record.captures, side_host, t0)
    for name, want in scenario.expect.apps.items():
        verdict.checks += c.check_reports(name, want.reports, events)
    verdict.programs = program_outcomes(scenario, events, record.run_dir, t0)
    verdict.checks += program_checks(scenario, verdict.programs, faults, record.run_dir, t0)
    # The kernels' own view over time (HOST.sockets.jsonl), beside the packets.
    sockets = judge_sockets(
        scenario,
        record.run_dir,
        [(j.summary, j.hosts) for j in connections],
        t0,
        record.t_end,
        paths.seen_by,
        paths.captured_ends if paths.join.joins_any else no_ends,
        paths.forger_of,
    )
    verdict.checks += sockets.checks
    verdict.notes += sockets.notes
    verdict.sockets = sockets.to_json(t0)
    predicted = [host for host, want in scenario.expect.apps.items() if want.at == "predicted"]
    tell_incomplete(verdict.checks, predicted)
    return verdict


def _first_rst(conn: ConnectionSummary | None) -> FrameRef | None:
    rsts = conn.rsts.client + conn.rsts.server if conn is not None else []
    return min(rsts, key=lambda f: f.time) if rsts else None


def _retold(
    conn: ConnectionSummary, paths: PathView, side_host: dict[Side, str], t0: float | None
) -> list[str]:
    """The connection's notes; an RST for a tuple a NAT made, which the sender's socket never
    had, is told as that rather than as a closed socket or a rebooted host; RSTs a router forged
    are not put down to the socket whose address they bear."""
    everyone = conn.rsts.client + conn.rsts.server
    if everyone and all(paths.forger_of(f) is not None for f in everyone):
        # Every RST was forged by a router (its note says so): the captures' guesses at the
        # state of the socket whose address they bear are about a kernel that never sent them.
        return [n for n in conn.notes if STATELESS_RST not in n]
    side = conn.rst_from
    # An RST a router forged bears the end's address, but that end's kernel never sent it.
    rsts = [f for f in conn.rsts.of(side) if paths.forger_of(f) is None] if side is not None else []
    if side is None or not rsts:
        return list(conn.notes)
    local, peer = (conn.client, conn.server) if side == "client" else (conn.server, conn.client)
    told = paths.foreign_rst_note(side_host[side], local, peer, rsts[0], t0)
    if told is None:
        return list(conn.notes)
    kept = [n for n in conn.notes if STATELESS_RST not in n]
    return [*kept, told]


def model_note(host: str, p: KernelPrediction, t0: float | None, saw: AppOutcome | None = None) -> str:
    """The kernel model's word on how a host's connection ends, next to what the capture shows;
    and, where the app's events are known (`saw`: what ended its connection), what it saw."""
    by = "by" if p.upper_bound else "at"  # the budget may have started before the capture
    end = "ends it at once" if p.predicted_s == 0 else f"ends it {by} {c.at(p.at, t0)}"
    if p.alternatives:
        # A knife edge or an orphan: the end the capture matched may be another than the first.
        end += "".join(f" or at {c.at(p.start_time + a, t0)}" for a in p.alternatives)
        seen = _matched_end(p)
        if seen is not None:
            end += f" (what the capture shows fits {c.at(p.start_time + seen, t0)})"
    return f"kernel model, {host}: {p.kind} {end}, {_told(p, t0, saw)} ({p.basis}); {p.observed}"


def _told(p: KernelPrediction, t0: float | None, saw: AppOutcome | None) -> str:
    """What the app is told. An orphan's app is told nothing: it had close()d the socket. The
    kernel keeps the error for the socket's next call: an app blocked on it learns it at once,
    one that makes no call after the end (an idle pooled connection) never does, which its
    events show."""
    if p.orphan_s is None:
        if saw is None:
            return f"the app told {p.app_error}"
        if saw.sees == "nothing":
            if p.beyond_capture:  # the run ended first
                return f"the app told {p.app_error} (its events show none: the run ended before)"
            if p.observed_s is None:
                return f"the app told {p.app_error} (its events show no error, nor the capture an end)"
            return (
                f"{p.app_error} kept for the app's next call on the socket (its events show no error on "
                "this connection: it made no call after the end)"
            )
        if saw.sees == p.app_error:
            return f"the app told {p.app_error} (its events: {saw.label(t0)})"
        return f"the app's error {p.app_error} by the model, where its events show {saw.label(t0)}"
    orphan = c.at(p.start_time + p.orphan_s, t0)
    if p.orphan_s != p.predicted_s and _matched_end(p) == p.orphan_s:
        return (
            f"no app told: the end the capture fits is an orphan's ({orphan}: its app had close()d the "
            f"socket; one that had only shut it down would be told {p.app_error})"
        )
    return (
        f"the app told {p.app_error} (nothing if it had close()d the socket: an orphan, ending at {orphan})"
    )


def _matched_end(p: KernelPrediction) -> float | None:
    """Of the model's ends, the one the observed end was judged against, when it fits."""
    if p.observed_s is None or not p.within_tolerance:
        return None
    return nearest_end(p, p.observed_s)


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


def _shown(address: str, port: int) -> str:
    """An endpoint as connections name it ([v6]:port)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def packets_after(packets: Iterable[TcpPacket], conn: ConnectionSummary, t: float) -> list[FrameRef]:
    ends = {conn.client, conn.server}
    return [
        FrameRef(p.file, p.frame, p.time)
        for p in packets
        if p.time >= t and _shown(p.src, p.sport) in ends and _shown(p.dst, p.dport) in ends
    ]


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
            s = settings_of_host(scenario.apps()[side_host[sender]])
            # The model's gaps from the RTO the capture shows at the first retransmission.
            rto = rto_at_stamp([f.time for f in conn.backoff_frames[1:]]) or TCP_RTO_MIN
            ut = s.user_timeout or None
            model = backoff_schedule(s.retries2, rto=rto, rto_max=s.rto_max, user_timeout=ut)
            linear = s.label("thin_linear") if s.thin_linear else None
            out.append(c.check_backoff(conn, tol, model, t0, s.rto_max, linear))
        out += c.check_counts(
            "keepalive_probes", e.keepalive_probes, conn.keepalive_probes, conn.keepalive_frames, t0
        )
        if e.keepalive_timing:
            prober: Side = conn.keepalive_from or "client"  # whose probes `conn.keepalive` times
            s = settings_of_host(scenario.apps()[side_host[prober]])
            out.append(c.check_keepalive_timing(conn, s.keepalive_time, s.keepalive_intvl, tol, t0))
        out += c.check_counts("zero_window", e.zero_window, conn.zero_window, conn.zero_window_frames, t0)
    for name, want in e.apps.items():
        if want.sees is not None:  # a program's expectations may be only on its exit (programs.py)
            out += c.check_app(name, want, apps[name], predictions.get(name), tol, t0)
    return out
