"""The kernel's own view beside the packets: for each captured connection, what each end's
socket samples say, and whether the two witnesses agree.

The samples see what no capture can: a socket that stays ESTABLISHED while its peer's kernel
forgot it (half-open), the retransmission counter climbing while the capture is silent (the
sends fail locally), the probe timer running without a zero window. Where they disagree the
finding says where ("the client's kernel counted 7 retransmissions, its capture shows 3"); a
verdict never hides it. Samples are ~0.2 s apart, so every comparison allows for what happened
between the last sample and the end of a socket.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.tcp.combine import SIDES
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side
from orchestrator.tcp.flows import MAX_EVIDENCE
from orchestrator.verdict.expectations import at, ref
from orchestrator.verdict.socket_timeline import GONE, SocketSeries, SocketTimeline, Transition
from orchestrator.verdict.ss_output import SocketSample

FindingKind = Literal["agrees", "differs", "half-open"]
SLACK_S = 0.1  # a sample (ss runs 10-70 ms here) and a packet this close may be in either order
_BOOT = re.compile(r"\.boot(\d+)\.[^.]+$")
CLOSING_STATES = ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "TIME-WAIT", "LAST-ACK", GONE)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    text: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class SideSockets:
    """One end of a connection as its kernel listed it."""

    side: Side
    host: str
    local: str
    peer: str
    timeline: SocketTimeline
    series: list[SocketSeries]

    @property
    def seen(self) -> bool:
        return bool(self.series)

    def samples(self) -> list[SocketSample]:
        return [s for series in self.series for s in series.samples]

    def transitions(self) -> list[Transition]:
        return [t for series in self.series for t in series.transitions()]

    def alive_at_end(self) -> bool:
        """Still listed in the last sample the host's sampler took."""
        last = self.timeline.last_tick()
        return (
            bool(self.series)
            and last is not None
            and self.series[-1].ended is None
            and not self.timeline.powered_off
        )

    def end_state(self) -> str:
        return self.series[-1].last.state if self.alive_at_end() else GONE

    def where(self, sample: SocketSample) -> str:
        return f"{self.timeline.file}:{sample.line}"

    def to_json(self, t0: float | None) -> dict[str, Any]:
        samples = self.samples()
        top = max(samples, key=lambda s: s.retrans_total) if samples else None
        return {
            "host": self.host,
            "file": self.timeline.file,
            "samples": len(samples),
            "states": [
                {"t": t.t, "at": at(t.t, t0), "state": t.state, "line": t.line} for t in self.transitions()
            ],
            "end": self.end_state() if samples else None,
            "retrans_total": top.retrans_total if top else 0,
            "timers": sorted({s.timer for s in samples} - {"none"}),
        }


@dataclass
class ConnectionSockets:
    client: str
    server: str
    hosts: dict[Side, str | None]  # the scenario host at each end (None: not one of the run's)
    sides: dict[Side, SideSockets]  # the ends whose host has socket samples
    findings: list[Finding] = field(default_factory=list)

    def to_json(self, t0: float | None) -> dict[str, Any]:
        return {
            "client": self.client,
            "server": self.server,
            "hosts": dict(self.hosts),
            "sides": {side: s.to_json(t0) for side, s in self.sides.items()},
            "findings": [{"kind": f.kind, "text": f.text, "evidence": f.evidence} for f in self.findings],
        }


# (host, local, peer) in the connection's terms -> (local, peer) as that host's kernel names them.
Namer = Callable[[str, str, str], tuple[str, str]]


# A frame -> its (source, destination) as its own capture has them (None: not known).
CapturedEnds = Callable[[FrameRef], tuple[str, str] | None]


# A frame -> the router that forged it (None: the host whose address it bears sent it).
Forger = Callable[[FrameRef], str | None]


def no_forger(_frame: FrameRef) -> str | None:
    return None


def same_names(_host: str, local: str, peer: str) -> tuple[str, str]:
    return local, peer


def no_ends(_frame: FrameRef) -> tuple[str, str] | None:
    return None


def reconcile(
    conn: ConnectionSummary,
    hosts: Mapping[Side, str | None],
    timelines: Mapping[str, SocketTimeline],
    t0: float | None,
    name: Namer = same_names,
    ends_of: CapturedEnds = no_ends,
    forger_of: Forger = no_forger,
) -> ConnectionSockets:
    """Each end's sockets for `conn`, and what they and the packets say together. `name` gives
    each end's own names of it: behind a NAT, the server's kernel knows the router's address;
    `ends_of` a frame's own tuple (a NAT may have given the flow another one)."""
    sides: dict[Side, SideSockets] = {}
    for side in SIDES:
        host = hosts.get(side)
        timeline = timelines.get(host) if host is not None else None
        if host is None or timeline is None or not timeline.ticks:
            continue
        local, peer = (conn.client, conn.server) if side == "client" else (conn.server, conn.client)
        local, peer = name(host, local, peer)
        series = _overlapping(timeline.of(local, peer), conn)
        sides[side] = SideSockets(side, host, local, peer, timeline, series)
    out = ConnectionSockets(conn.client, conn.server, dict(hosts), sides)
    for view in sides.values():
        out.findings += _unseen(view, conn)
        if view.seen:
            out.findings += _retransmissions(view, conn, t0)
            out.findings += _after_close(view, conn, t0, ends_of, forger_of)
            out.findings += _probe_timer(view, conn, t0)
    out.findings += _half_open(sides, t0)
    return out


def _overlapping(series: list[SocketSeries], conn: ConnectionSummary) -> list[SocketSeries]:
    """A reused 4-tuple: only the sockets alive while this connection's packets flowed."""
    if conn.first_frame is None or conn.last_frame is None or len(series) < 2:
        return series
    start, end = conn.first_frame.time, conn.last_frame.time
    return [s for s in series if s.first.t <= end + 1.0 and (s.ended is None or s.ended.t >= start)]


def _unseen(view: SideSockets, conn: ConnectionSummary) -> list[Finding]:
    interval = view.timeline.interval_s or 0.0
    if view.seen or conn.handshake != "complete" or conn.duration_s < 3 * interval:
        return []  # a short connection can fall between two samples
    return [
        Finding(
            "differs",
            f"{view.host}'s kernel never listed {view.local} -> {view.peer} in its "
            f"{len(view.timeline.ticks)} socket samples, although its packets span {conn.duration_s:.3f} s",
            [view.timeline.file],
        )
    ]


def _retransmissions(view: SideSockets, conn: ConnectionSummary, t0: float | None) -> list[Finding]:
    samples = view.samples()
    top = max(samples, key=lambda s: s.retrans_total)
    last = samples[-1]
    captured = conn.retransmissions.get(view.side)
    frames = conn.retransmission_frames.of(view.side)
    complete = len(frames) == captured and captured <= MAX_EVIDENCE
    if top.retrans_total == 0 and captured == 0:
        return []
    kernel = f"{view.host}'s kernel counted {top.retrans_total} retransmission{_s(top.retrans_total)}"
    evidence = [f"{view.where(top)} ({top.describe()})"]
    if not complete:  # more than the evidence keeps: totals only
        by_last, before_last = captured, captured
    else:
        by_last = sum(f.time <= last.t + SLACK_S for f in frames)
        before_last = sum(f.time <= last.t - SLACK_S for f in frames)
    evidence += [ref(f, t0) for f in frames[:3]]
    if top.retrans_total > by_last:
        missing = top.retrans_total - by_last
        return [
            Finding(
                "differs",
                f"{kernel} by {at(top.t, t0)} (ss), its capture shows {by_last} by then: {missing} "
                "never reached the capture (sent while its interface was gone, or dropped inside its "
                "own namespace), or Wireshark calls them out-of-order",
                evidence,
            )
        ]
    if top.retrans_total < before_last:
        return [
            Finding(
                "differs",
                f"{kernel} (ss, its last sample at {at(last.t, t0)}), its capture shows {before_last} "
                "before then: Wireshark flags segments the kernel did not retransmit (duplicates?)",
                evidence,
            )
        ]
    later = captured - by_last
    tail = f", and {later} more after its last sample at {at(last.t, t0)}" if later > 0 else ""
    return [Finding("agrees", f"{kernel} (ss), as its capture shows{tail}", evidence)]


def _after_close(
    view: SideSockets,
    conn: ConnectionSummary,
    t0: float | None,
    ends_of: CapturedEnds = no_ends,
    forger_of: Forger = no_forger,
) -> list[Finding]:
    """After its own RST the socket is gone; after its own FIN it is closing or gone. An RST a
    router forged in its name is not its own: its kernel never sent it."""
    out: list[Finding] = []
    rst = _first([f for f in conn.rsts.of(view.side) if forger_of(f) is None])
    if rst is None:
        out += _reset_by_forger(view, conn, t0, forger_of)
    fin = _first(conn.fins.of(view.side))
    for frame, allowed, what in ((rst, (GONE,), "RST"), (fin, CLOSING_STATES, "FIN")):
        if frame is None:
            continue
        boot = capture_boot(frame.file)
        if boot not in {series.boot for series in view.series}:
            out += _from_another_kernel(view, frame, what, boot, t0)
            continue
        later = [s for s in view.samples() if s.t > frame.time + SLACK_S and s.state not in allowed]
        ends = ends_of(frame) if what == "RST" else None
        if later and ends is not None and set(ends) != {view.local, view.peer}:
            s = later[0]
            out.append(
                Finding(
                    "agrees",
                    f"{view.host} sent an RST at {at(frame.time, t0)} for {ends[0]} -> {ends[1]}, not its "
                    f"socket's tuple ({view.local} -> {view.peer}): the flow reached it under another tuple "
                    "(a NAT on the way changed it), for which its kernel had no socket; the socket stayed "
                    f"{s.state} ({at(s.t, t0)})",
                    [ref(frame, t0), view.where(s)],
                )
            )
        elif later:
            s = later[0]
            out.append(
                Finding(
                    "differs",
                    f"{view.host} sent {'an' if what == 'RST' else 'a'} {what} at {at(frame.time, t0)}, yet "
                    f"its kernel still listed the socket {s.state} at {at(s.t, t0)}"
                    + (
                        ": not its socket's (another part of its kernel sent it, e.g. a firewall's REJECT)"
                        if what == "RST"
                        else ""
                    ),
                    [ref(frame, t0), view.where(s)],
                )
            )
        elif what == "RST" and (end := view.series[-1].ended) is not None:
            out.append(
                Finding(
                    "agrees",
                    f"{view.host} sent an RST at {at(frame.time, t0)}; its kernel no longer had the socket "
                    f"at {at(end.t, t0)}",
                    [ref(frame, t0), f"{view.timeline.file}:{end.line}"],
                )
            )
    return out


def _reset_by_forger(
    view: SideSockets, conn: ConnectionSummary, t0: float | None, forger_of: Forger
) -> list[Finding]:
    """The socket gone after an RST a router forged toward it, bearing its peer's address."""
    other: Side = "server" if view.side == "client" else "client"
    toward = [(f, who) for f in conn.rsts.of(other) if (who := forger_of(f)) is not None]
    end = view.series[-1].ended if view.series else None
    if not toward or end is None or end.t < toward[0][0].time:
        return []
    frame, router = toward[0]
    return [
        Finding(
            "agrees",
            f"{router} forged an RST toward {view.host} at {at(frame.time, t0)}, bearing its peer's "
            f"address; {view.host}'s kernel no longer had the socket at {at(end.t, t0)} ({view.host} "
            "itself sent no RST)",
            [ref(frame, t0), f"{view.timeline.file}:{end.line}"],
        )
    ]


def _from_another_kernel(
    view: SideSockets, frame: FrameRef, what: str, boot: int, t0: float | None
) -> list[Finding]:
    """A segment sent by a kernel that never had the socket: the host was power-cycled."""
    old = view.series[-1]
    if old.kernel_gone is None:
        return []
    return [
        Finding(
            "agrees",
            f"{view.host}'s {what} at {at(frame.time, t0)} came from its new kernel (boot {boot}), which "
            f"had no such socket; the old kernel listed it last at {at(old.last.t, t0)}",
            [ref(frame, t0), view.where(old.last)],
        )
    ]


def capture_boot(file: str) -> int:
    """Which boot of its host a capture file is from: server.pcap 1, server.boot2.pcap 2."""
    m = _BOOT.search(file)
    return int(m.group(1)) if m else 1


def _probe_timer(view: SideSockets, conn: ConnectionSummary, t0: float | None) -> list[Finding]:
    """The persist timer with no zero window from the peer: the kernel's sends fail locally
    (measured: data that never left waits on the probe timer, and counts no retransmission)."""
    peer: Side = "server" if view.side == "client" else "client"
    persist = [s for s in view.samples() if s.timer == "persist" and s.backoff > 0]
    if not persist or conn.zero_window.get(peer) > 0:
        return []
    s = persist[-1]
    return [
        Finding(
            "differs",
            f"{view.host}'s kernel backed off on its probe timer ({s.describe()} at {at(s.t, t0)}), but the "
            f"capture shows no zero window from the {peer}: its sends failed locally and never left",
            [view.where(persist[0]), view.where(s)],
        )
    ]


def _half_open(sides: dict[Side, SideSockets], t0: float | None) -> list[Finding]:
    if len(sides) < 2 or not all(v.seen for v in sides.values()):
        return []
    alive = {side: v.alive_at_end() for side, v in sides.items()}
    if all(alive.values()):
        states = {v.end_state() for v in sides.values()}
        if states == {"ESTAB"}:
            lines = [v.where(v.series[-1].last) for v in sides.values()]
            return [Finding("agrees", "both kernels still had the connection ESTAB at the end", lines)]
        return []
    if not any(alive.values()):
        return []
    open_side = next(side for side, up in alive.items() if up)
    gone_side = next(side for side, up in alive.items() if not up)
    up, down = sides[open_side], sides[gone_side]
    last = down.series[-1]
    state = up.end_state()
    if state not in ("ESTAB", "CLOSE-WAIT"):
        return []
    if last.ended is not None:
        how = "with its kernel (powered off)" if last.kernel_gone else f"at {at(last.ended.t, t0)}"
        where = f"{down.timeline.file}:{last.ended.line}"
    elif down.timeline.powered_off:  # never on again: its last sample is the evidence
        seen = f"{last.last.state} at {at(last.last.t, t0)}"
        how = f"with its kernel (powered off; last sampled with it {seen})"
        where = down.where(last.last)
    else:
        return []
    return [
        Finding(
            "half-open",
            f"half-open at the end: {up.host} still had it {state}, while {down.host}'s kernel had "
            f"forgotten it {how}",
            [up.where(up.series[-1].last), where],
        )
    ]


def _first(frames: list[FrameRef]) -> FrameRef | None:
    return min(frames, key=lambda f: f.time) if frames else None


def _s(n: int) -> str:
    return "" if n == 1 else "s"
