"""Per-connection TCP facts, computed in one streaming pass, in agreement with Wireshark.

`analyze` groups TCP segments into connections and returns one
`ConnectionSummary` per connection, in order of first appearance (Wireshark's
``tcp.stream`` order).

Wireshark agreement
-------------------
The per-segment flags are a port of ``tcp_analyze_sequence_number`` in
Wireshark's ``epan/dissectors/packet-tcp.c``, checked against tshark 4.0.17
(the version on these machines) with crafted captures and a randomised
differential test (``tests/unit/test_analysis.py``):

* ``tcp.analysis.retransmission`` is set for plain retransmissions **and** for
  fast and spurious retransmissions (the dissector adds the retransmission
  expert item to those too), but **not** for out-of-order segments. The order
  of the checks is tshark 4.0's: a keep-alive is never a retransmission; then
  spurious (data entirely at or below the peer's last ACK), then fast (>= 2
  duplicate ACKs from the peer, seq equal to their ACK, within 20 ms of the
  last of them), then out-of-order (within the initial RTT, or 3 ms without
  a captured handshake, of the segment that last advanced the sequence, and
  not an exact repeat of it), then plain retransmission (seq below the next
  expected one).
* ``tcp.analysis.keep_alive``: 0 or 1 byte, seq = next expected - 1, no
  SYN/FIN/RST, unless it is a zero-window probe (1 byte at the next expected
  seq while the peer's window is 0), which Wireshark checks first. Linux sends
  its own zero-window probes as 0-byte segments at snd_una - 1, so Wireshark
  (and so we) count them as keep-alives; the notes say so when the peer's
  window was 0 at the time.
* ``tcp.analysis.zero_window``: window 0 on a segment without SYN/FIN/RST, so
  a window-0 RST does not count; nor does a zero-window probe (Wireshark skips
  the check for it).
* The initial RTT (the out-of-order threshold) is the time from the latest SYN
  to the first ACK without SYN; a SYN stamped exactly 0 counts as no SYN.
* Two quirks of tshark 4.0.17, pinned down by experiment (the current source
  reads differently): after an "ACKed unseen segment" whose mark is not behind
  the peer's next seq, the peer's duplicate-ACK counter is set to -1, which,
  being unsigned there, makes a matching segment within 20 ms a *fast*
  retransmission; and the same SYN again mid-connection resets the next
  expected seq to the highest contiguous one (Wireshark issue 17616).
* Time comparisons use integer nanoseconds, as Wireshark does.

One deliberate gap: Wireshark stops tracking unacknowledged segments after
10,000 of them in one direction; we do not model that (it only matters for
captures missing one direction).

Connections
-----------
Keyed by the unordered 4-tuple. As in Wireshark, a SYN (without ACK) whose
sequence number differs from the one already known for its sender on that
tuple starts a new connection (port reuse); a SYN with the same sequence
number is a retransmission. Data without a new SYN stays in the same
connection, so "peer rebooted, we send, it answers RST" is one connection.

The client is the sender of the first SYN without ACK; failing that, the
receiver of a SYN+ACK; failing that (no handshake captured), the side with the
higher port (ephemeral ports are high, service ports low); with equal ports,
the sender of the connection's first captured segment.

Close rule
----------
* ``rst``: an RST came before both sides had sent a FIN. This includes "one
  side sent FIN, the other answered with RST" (``initiator`` still names the
  FIN sender, and a note tells the story).
* ``fin``: both sides sent FIN before any RST. An RST after both FINs (a late
  segment hitting a closed socket) leaves the close a FIN close; ``rst_from``
  is still set and a note says so.
* ``fin-unanswered``: one side sent FIN, no RST, the other side no FIN.
* ``none``: neither FIN nor RST.

``close_packets`` (FIN closes only) is 3 when the second FIN also
acknowledges the first and its sender had not acknowledged the first FIN in
an earlier segment; otherwise 4 (a separate ACK came first, or the FINs
crossed).

Other facts
-----------
* ``backoff_gaps_s`` / ``backoff_frames``: the most-retransmitted segment
  (same seq, same sender; counting every kind of ``tcp.analysis.retransmission``).
  Ties go to a segment whose original send was captured, then to the later one.
  The frames are the original send, then each retransmission; the gaps are
  between successive sends, **the first gap measured from the original send**
  (so with RTO doubling they read 0.2, 0.4, 0.8, ... like
  ``kernel_model.backoff_schedule``). When the original send was not captured
  (or was already acknowledged, for a spurious retransmission) the list starts
  at the first retransmission. Evidence caps at 100 sends.
* ``keepalive``: for the side that sent the most probes. ``first_after_idle_s``
  runs from the last segment the *peer* sent before the first probe (what
  resets Linux's keep-alive timer: tp->rcv_tstamp), skipping the peer's own
  probes; if the peer sent nothing, from the prober's previous segment.
  ``interval_s`` is the median gap between successive probes of that side
  (None with a single probe); answered probes make it the idle time again.
* ``last_activity``: the last segment of either side carrying data, SYN or FIN
  (keep-alive probes excluded, retransmissions included).
* ``oldest_unacked``: the first send of the oldest segment with data, SYN or
  FIN that the peer never acknowledged by the end of the input: where Linux's
  retransmission budget (tcp_retries2, TCP_USER_TIMEOUT) starts counting.
* ``stream``: the connection's index in order of first segment (tcp.stream);
  ``packets``: its segments, both directions.

The input may be a time-ordered merge of several files (each host's own
sends), so "before/after" is position in the input stream, never frame
numbers, which only order frames within one file.
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.verdict.pcapfile import ACK, FIN, RST, SYN, TcpCapture, TcpPacket, read_tcp
from orchestrator.verdict.summary import (
    Close,
    ConnectionSummary,
    FrameRef,
    Handshake,
    KeepaliveTiming,
    Side,
    SideCounts,
    SideFrames,
)

__all__ = ["MAX_EVIDENCE", "Analysis", "analyze", "analyze_capture", "analyze_file"]

# Evidence lists are capped; counts stay exact.
MAX_EVIDENCE = 100
# Keep-alive gaps kept per side for the median.
MAX_KA_GAPS = 10_000
# Retransmitted segments tracked at once per side (memory bound).
MAX_RUNS = 4096
# Unacknowledged segments remembered per side (memory bound; Wireshark's limit too).
MAX_UNACKED = 10_000

_M = 0xFFFFFFFF
_HALF = 0x80000000

# Per-segment analysis flags (a subset of Wireshark's TCP_A_*).
_KA = 0x1
_KA_ACK = 0x2
_ZWP = 0x4
_ZWP_ACK = 0x8
_ZW = 0x10
_RETX = 0x20
_FAST = 0x40
_SPUR = 0x80
_OOO = 0x100
_DUPACK = 0x200
_ANY_RETX = _RETX | _FAST | _SPUR

_OOO_DEFAULT_NS = 3_000_000  # Wireshark's out-of-order threshold without an initial RTT
_FAST_WINDOW_NS = 20_000_000  # fast retransmission: within 20 ms of the last duplicate ACK


class _Seen:
    """A segment remembered as evidence, with its position in the input stream."""

    __slots__ = ("i", "p")

    def __init__(self, p: TcpPacket, i: int) -> None:
        self.p = p
        self.i = i


class _Run:
    """Every send of one segment (same seq, same sender): the original first, if captured."""

    __slots__ = ("count", "end", "last", "original", "sends", "seq")

    def __init__(self, seq: int, end: int, original: TcpPacket | None) -> None:
        self.seq = seq
        self.end = end
        self.original = original
        self.count = 0  # retransmissions, the original not counted
        self.sends: list[TcpPacket] = [] if original is None else [original]  # capped
        self.last: _Seen | None = None  # latest retransmission

    def add(self, p: TcpPacket, i: int) -> None:
        self.count += 1
        self.last = _Seen(p, i)
        if len(self.sends) <= MAX_EVIDENCE:
            self.sends.append(p)


class _Flow:
    """One direction of a connection: what one side sends."""

    # Hot fields first, so they share cache lines (slots are laid out in this order).
    __slots__ = (  # noqa: RUF023
        "conn",
        "rev",
        "fresh",
        "nextseq",
        "lastack",
        "window",
        "dupacks",
        "maxseq",
        "lastflags",
        "lastack_t",
        "nextseq_t",
        "unacked",
        "watch",
        "acked_fin_early",
        "acked_upto",
        "addr",
        "base_seq",
        "base_set",
        "fin",
        "fin_end",
        "fins",
        "ka",
        "ka_acks",
        "ka_first",
        "ka_frames",
        "ka_gaps",
        "ka_idle_ref",
        "ka_last",
        "ka_zw",
        "last_real_t",
        "port",
        "retx",
        "retx_frames",
        "rst",
        "rst_count",
        "rst_stateless",
        "rsts",
        "runs",
        "syn",
        "syn_ack",
        "zw",
        "zw_frames",
    )

    def __init__(self, conn: _Conn, addr: str, port: int) -> None:
        self.conn = conn
        self.addr = addr
        self.port = port
        self.rev: _Flow = self
        self.fresh = True  # base sequence numbers not settled yet
        self.watch = False  # its ACKs may complete the handshake, the initial RTT or a FIN close
        # Wireshark's per-flow state (tcp_flow_t, tcp_analyze_seq_info). 0 means "unset", as there.
        self.base_set = False
        self.base_seq = 0
        self.nextseq = 0
        self.nextseq_t = 0
        self.maxseq = 0  # maxseqtobeacked
        self.lastack = 0
        self.lastack_t = 0  # ns of this side's latest segment
        self.window = -1  # G_MAXUINT32 there: equal to no real window
        self.dupacks = 0
        self.lastflags = 0
        # Facts.
        self.syn: _Seen | None = None  # first SYN without ACK
        self.syn_ack: _Seen | None = None  # first SYN+ACK
        self.fin: _Seen | None = None  # first FIN
        self.fin_end = 0  # the sequence number that acknowledges the first FIN
        self.fins: list[TcpPacket] = []
        self.acked_fin_early = False  # acknowledged the peer's FIN before sending its own
        self.rst: _Seen | None = None
        self.rst_stateless = False  # first RST: no ACK flag, seq = the peer's ACK (no socket)
        self.rst_count = 0
        self.rsts: list[TcpPacket] = []
        self.retx = 0
        self.retx_frames: list[TcpPacket] = []
        self.ka = 0
        self.ka_acks = 0  # keep-alive ACKs this side sent: answers to the peer's probes
        self.ka_first: _Seen | None = None
        self.ka_last: _Seen | None = None
        self.ka_frames: list[TcpPacket] = []
        self.ka_gaps: list[int] = []
        self.ka_idle_ref = 0  # ns: the first probe's idle time counts from here
        self.ka_zw = 0  # probes sent while the peer advertised a zero window
        self.last_real_t = 0  # ns: latest segment before a probe that was not itself a probe
        self.zw = 0
        self.zw_frames: list[TcpPacket] = []
        # (end seq, first send, stream position) of segments with data/SYN/FIN not yet
        # acknowledged, in sending order; acknowledged ones are dropped from the left.
        self.unacked: deque[tuple[int, TcpPacket, int]] = deque()
        self.acked_upto: int | None = None  # the peer's ACK when it last let us drop segments
        self.runs: dict[int, _Run] = {}


class _Conn:
    __slots__ = (  # noqa: RUF023 - hot fields first
        "last",
        "packets",
        "last_activity",
        "rtt_wait",
        "a",
        "b",
        "best_run",
        "best_run_flow",
        "first",
        "first_rtt",
        "handshake_done",
        "hs_pending",
        "index",
        "mru_syn",
    )

    def __init__(self, index: int, first: TcpPacket) -> None:
        self.index = index
        self.first = first
        self.last = first
        self.last_activity: TcpPacket | None = None
        self.packets = 0
        self.mru_syn = 0  # ns of the latest SYN (Wireshark: ts_mru_syn), 0 = none
        self.first_rtt = 0  # ns (Wireshark: ts_first_rtt), 0 = unknown
        self.rtt_wait = False  # a SYN was seen, the initial RTT not yet known
        self.hs_pending: _Flow | None = None  # after the SYN+ACK: the flow whose ACK completes the handshake
        self.handshake_done = False
        self.a = _Flow(self, first.src, first.sport)
        self.b = _Flow(self, first.dst, first.dport)
        self.a.rev = self.b
        self.b.rev = self.a
        self.best_run: _Run | None = None
        self.best_run_flow: _Flow | None = None


@dataclass(slots=True)
class Analysis:
    """The connections of one capture, and what the reader said about the file."""

    connections: list[ConnectionSummary]
    packets: int  # frames read, TCP or not
    tcp_packets: int
    truncated: bool
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    linktypes: list[int] = field(default_factory=list)


def analyze_capture(capture: TcpCapture) -> Analysis:
    """Read a whole capture and analyse it."""
    conns = analyze(capture)
    return Analysis(
        connections=conns,
        packets=capture.packets,
        tcp_packets=capture.tcp_packets,
        truncated=capture.truncated,
        files=[capture.name],
        problems=[capture.problem] if capture.problem else [],
        linktypes=sorted(capture.linktypes),
    )


def analyze_file(path: Path | str) -> Analysis:
    """`read_tcp` then `analyze_capture`. Raises `CaptureFormatError` for a file that is not a capture."""
    return analyze_capture(read_tcp(path))


def analyze(packets: Iterable[TcpPacket]) -> list[ConnectionSummary]:  # noqa: PLR0915 - the hot loop, inlined
    """Group TCP segments (in capture order) into connections and summarise each.

    One pass, per-connection state only; evidence lists are capped at
    `MAX_EVIDENCE` frames while counts stay exact. The common segment (in-order
    data or a plain ACK) takes the short way through the loop; anything rarer
    goes through helper functions.
    """
    flows: dict[tuple[str, int, str, int], _Flow] = {}
    conns: list[_Conn] = []
    get = flows.get
    m32, half = _M, _HALF

    for i, p in enumerate(packets, 1):  # i: position in the stream
        _frame, _t, src, sport, dst, dport, seq, ack, flags, window, seglen, _file, tns = p
        fwd = get((src, sport, dst, dport))
        if fwd is None or flags & SYN:
            fwd = _syn_or_new(fwd, p, flows, conns)
        conn = fwd.conn
        rev = fwd.rev
        conn.last = p
        conn.packets += 1
        if fwd.fresh:
            _bases(fwd, rev, seq, ack, flags)

        # ---- Wireshark's tcp_analyze_sequence_number --------------------------
        nextseq = fwd.nextseq
        lastack = fwd.lastack
        if seglen == 1 and seq == nextseq and rev.window == 0:
            ta = _ZWP  # a zero-window probe skips every check up to "finished_fwd"
        elif flags & (SYN | FIN | RST) or (window and seglen > 1):
            ta = 0
        else:
            ta = 0 if window else _ZW
            if seglen <= 1 and seq == (nextseq - 1) & m32:
                ta |= _KA
            if seglen == 0 and seq == nextseq and ack == lastack:
                if window:
                    if window == fwd.window:
                        if rev.lastflags & _KA:
                            ta |= _KA_ACK
                        else:
                            fwd.dupacks = 1 if fwd.dupacks == -1 else fwd.dupacks + 1
                            ta |= _DUPACK
                elif fwd.window == 0 and rev.lastflags & _ZWP:
                    ta |= _ZWP_ACK
        if ack != lastack:
            fwd.dupacks = 0
        if flags & ACK:
            # "ACKed unseen segment". tshark 4.0 moves the mark up to the peer's next seq when
            # it is behind it, else sets the peer's duplicate-ACK counter to -1 (see
            # _not_advanced). Found by experiment: the current source differs.
            mark = rev.maxseq
            if mark and 0 < ((ack - mark) & m32) < half:
                if ((mark - rev.nextseq) & m32) >= half:
                    rev.maxseq = rev.nextseq
                else:
                    rev.dupacks = -1
        if seglen or flags & (SYN | FIN):
            if not ta & _KA:
                rla = rev.lastack
                over = (seq + seglen - rla) & m32
                if seglen and rla and (over == 0 or over >= half):
                    ta |= _SPUR
                elif (
                    nextseq
                    and ((seq - nextseq) & m32) >= half
                    and not (seglen > 1 and (nextseq - 1) & m32 == seq)  # data right after a probe byte
                ):
                    ta |= _not_advanced(conn, fwd, rev, p, nextseq, rla)
            end = (seq + seglen + 1) & m32 if flags & (SYN | FIN) else (seq + seglen) & m32
        else:
            end = seq
        if (nextseq == 0 or 0 < ((end - nextseq) & m32) < half) and not ta & _ZWP:
            fwd.nextseq = nextseq = end
            fwd.nextseq_t = tns
        mark = fwd.maxseq
        if (seq == mark or not mark) and not ta & _ZWP:
            fwd.maxseq = nextseq

        # ---- Facts of our own (before the flow's state moves on) ----------------
        if ta & _FACTS:
            _facts(conn, fwd, rev, p, i, ta, end)
        if (seglen or flags & (SYN | FIN)) and not ta & _KA:
            conn.last_activity = p
            if not ta & _ANY_RETX:
                q = fwd.unacked
                if len(q) < MAX_UNACKED:  # the peer acknowledges nothing: a one-sided capture
                    q.append((end, p, i))
        if flags & ACK and ack != lastack:
            q = rev.unacked
            if q and ((ack - q[0][0]) & m32) < half:
                if rev.runs:
                    _forget_acked(rev, q, ack)
                else:  # the same, inlined: no retransmitted segment to forget
                    rev.acked_upto = ack
                    q.popleft()
                    while q and ((ack - q[0][0]) & m32) < half:
                        q.popleft()
        if flags & (SYN | FIN | RST):
            _control(conn, fwd, rev, p, i)
        elif fwd.watch:
            _watch(conn, fwd, rev, p)

        fwd.window = window
        fwd.lastack = ack
        fwd.lastack_t = tns
        fwd.lastflags = ta

    return [_summarize(c) for c in conns]


_FACTS = _ZW | _KA | _KA_ACK | _ANY_RETX


def _syn_or_new(
    fwd: _Flow | None, p: TcpPacket, flows: dict[tuple[str, int, str, int], _Flow], conns: list[_Conn]
) -> _Flow:
    """A first segment on a 4-tuple, or a SYN: a new connection, or the same SYN again."""
    if fwd is not None:
        if p.flags & (SYN | ACK) != SYN or not fwd.base_set:
            return fwd
        if p.seq == fwd.base_seq:
            # The same SYN again: Wireshark restores nextseq, which an RST with seq = the
            # peer's ACK may have moved (its issue 17616). It will count as a retransmission.
            fwd.nextseq = fwd.maxseq
            return fwd
        # A SYN with a new initial sequence number: the 4-tuple is reused.
    conn = _Conn(len(conns), p)
    conns.append(conn)
    flows[(p.src, p.sport, p.dst, p.dport)] = conn.a
    flows[(p.dst, p.dport, p.src, p.sport)] = conn.b
    return conn.a


def _bases(fwd: _Flow, rev: _Flow, seq: int, ack: int, flags: int) -> None:
    """Wireshark's base sequence numbers: a SYN's seq, else seq - 1; the peer's from ack - 1."""
    if not fwd.base_set:
        fwd.base_seq = seq if flags & SYN else (seq - 1) & _M
        fwd.base_set = True
    if flags & ACK and not rev.base_set:
        rev.base_seq = (ack - 1) & _M
        rev.base_set = True
    fwd.fresh = not rev.base_set


def _not_advanced(conn: _Conn, fwd: _Flow, rev: _Flow, p: TcpPacket, nextseq: int, rla: int) -> int:
    """A segment below the next expected seq: fast retransmission, out-of-order, or retransmission."""
    tns = p.time_ns
    dt = tns - rev.lastack_t
    # dupacknum is a guint32 there: the -1 left by "ACKed unseen segment" counts as many.
    if (rev.dupacks >= 2 or rev.dupacks == -1) and rla == p.seq and 0 <= dt < _FAST_WINDOW_NS:
        return _FAST
    dt = tns - fwd.nextseq_t
    threshold = conn.first_rtt or _OOO_DEFAULT_NS
    if 0 <= dt < threshold and nextseq != (p.seq + p.payload_len + (1 if p.flags & (SYN | FIN) else 0)) & _M:
        return _OOO
    return _RETX


def _facts(conn: _Conn, fwd: _Flow, rev: _Flow, p: TcpPacket, i: int, ta: int, end: int) -> None:
    if ta & _ANY_RETX:
        _retransmission(conn, fwd, p, i, end)
    elif ta & _KA:
        _keepalive(fwd, rev, p, i)
    elif ta & _KA_ACK:
        fwd.ka_acks += 1
    if ta & _ZW:
        fwd.zw += 1
        if len(fwd.zw_frames) < MAX_EVIDENCE:
            fwd.zw_frames.append(p)


def _covers(ack: int, end: int) -> bool:
    """ack >= end in sequence space."""
    return ((ack - end) & _M) < _HALF


def _forget_acked(flow: _Flow, q: deque[tuple[int, TcpPacket, int]], ack: int) -> None:
    """Drop the segments of `flow` that the peer's `ack` acknowledges, oldest first."""
    flow.acked_upto = ack
    runs = flow.runs
    while q and ((ack - q[0][0]) & _M) < _HALF:
        _end, p, _i = q.popleft()
        if runs:
            runs.pop(p.seq, None)


def _retransmission(conn: _Conn, fwd: _Flow, p: TcpPacket, i: int, end: int) -> None:
    fwd.retx += 1
    if len(fwd.retx_frames) < MAX_EVIDENCE:
        fwd.retx_frames.append(p)
    seq = p.seq
    runs = fwd.runs
    run = runs.get(seq)
    if run is None:
        if len(runs) >= MAX_RUNS:
            runs.clear()
            best = conn.best_run
            if best is not None and conn.best_run_flow is fwd:
                runs[best.seq] = best
        original = next((e[1] for e in fwd.unacked if e[1].seq == seq), None)
        if original is None and len(fwd.unacked) < MAX_UNACKED:
            # Its first send was not captured (or was already acknowledged): let this one stand
            # for it among the unacknowledged segments.
            fwd.unacked.append((end, p, i))
        run = runs[seq] = _Run(seq, end, original)
    run.add(p, i)
    best = conn.best_run
    # Ties: a run whose original send was captured (it has a first gap), then the later run,
    # which is nearer the end of the story.
    if (
        best is None
        or run.count > best.count
        or (run.count == best.count and (run.original is not None or best.original is None))
    ):
        conn.best_run = run
        conn.best_run_flow = fwd


def _keepalive(fwd: _Flow, rev: _Flow, p: TcpPacket, i: int) -> None:
    """A keep-alive probe from `fwd`; `fwd`'s state still describes its previous segment."""
    tns = p.time_ns
    if not fwd.lastflags & _KA:
        fwd.last_real_t = fwd.lastack_t
    seen = _Seen(p, i)
    if fwd.ka_last is None:
        # Idle counts from the peer's latest segment that was not itself a probe (what resets
        # Linux's keep-alive timer), or from our own latest one if the peer sent none.
        peer = rev.last_real_t if rev.lastflags & _KA else rev.lastack_t
        fwd.ka_idle_ref = peer or fwd.last_real_t or tns
        fwd.ka_first = seen
    elif len(fwd.ka_gaps) < MAX_KA_GAPS:
        fwd.ka_gaps.append(tns - fwd.ka_last.p.time_ns)
    fwd.ka_last = seen
    fwd.ka += 1
    if rev.window == 0:
        fwd.ka_zw += 1
    if len(fwd.ka_frames) < MAX_EVIDENCE:
        fwd.ka_frames.append(p)


def _watch(conn: _Conn, fwd: _Flow, rev: _Flow, p: TcpPacket) -> None:
    """ACK-bearing segments that may complete the handshake, the initial RTT or a FIN close."""
    flags = p.flags
    if flags & ACK and not flags & SYN:
        if conn.rtt_wait:
            # Wireshark's ts_first_rtt: the first ACK without SYN after a SYN.
            conn.first_rtt = p.time_ns - conn.mru_syn
            conn.rtt_wait = conn.first_rtt == 0
        synack = rev.syn_ack
        if (
            conn.hs_pending is fwd
            and not flags & RST
            and synack is not None
            and _covers(p.ack, synack.p.seq + 1)
        ):
            conn.hs_pending = None
            conn.handshake_done = True
        if rev.fin is not None and fwd.fin is None and not flags & FIN and _covers(p.ack, rev.fin_end):
            fwd.acked_fin_early = True
    _rewatch(conn, fwd)
    _rewatch(conn, rev)


def _rewatch(conn: _Conn, f: _Flow) -> None:
    f.watch = (
        conn.rtt_wait
        or conn.hs_pending is f
        or (f.rev.fin is not None and f.fin is None and not f.acked_fin_early)
    )


def _control(conn: _Conn, fwd: _Flow, rev: _Flow, p: TcpPacket, i: int) -> None:
    """SYN, FIN and RST bookkeeping: rare segments, kept out of the hot loop."""
    flags = p.flags
    if flags & SYN:
        if flags & ACK:
            if fwd.syn_ack is None:
                fwd.syn_ack = _Seen(p, i)
                if rev.syn is not None and not conn.handshake_done:
                    conn.hs_pending = rev
        else:
            if fwd.syn is None:
                fwd.syn = _Seen(p, i)
            if p.time_ns:  # a zero timestamp means "unset" to Wireshark
                conn.mru_syn = p.time_ns
                conn.rtt_wait = not conn.first_rtt
    if flags & FIN:
        if fwd.fin is None:
            fwd.fin = _Seen(p, i)
            fwd.fin_end = (p.seq + p.payload_len + 1) & _M
        if len(fwd.fins) < MAX_EVIDENCE:
            fwd.fins.append(p)
    if flags & RST:
        if fwd.rst is None:
            fwd.rst = _Seen(p, i)
            # What a host sends for a segment it has no socket for: RST without ACK, seq = that ACK.
            fwd.rst_stateless = not flags & ACK and rev.lastack_t != 0 and p.seq == rev.lastack
        fwd.rst_count += 1
        if len(fwd.rsts) < MAX_EVIDENCE:
            fwd.rsts.append(p)
    _watch(conn, fwd, rev, p)


# ---------------------------------------------------------------------------
# Summaries


def _ref(p: TcpPacket | None) -> FrameRef | None:
    return None if p is None else FrameRef(p.file, p.frame, p.time)


def _refs(ps: list[TcpPacket]) -> list[FrameRef]:
    return [FrameRef(p.file, p.frame, p.time) for p in ps]


def _secs(ns: float) -> float:
    return round(ns / 1e9, 6)


def _fmt(s: float) -> str:
    """Seconds for a sentence: 0.2, 1.6, 7200."""
    return f"{s:.3f}".rstrip("0").rstrip(".")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _pos(s: _Seen | None) -> int:
    return s.i if s is not None else 0


def _client_flow(c: _Conn) -> _Flow:
    """First SYN's sender; else the SYN+ACK's receiver; else the higher port; else the first sender."""
    a, b = c.a, c.b
    if a.syn is not None or b.syn is not None:
        if b.syn is None:
            return a
        if a.syn is None:
            return b
        return a if a.syn.i < b.syn.i else b
    if a.syn_ack is not None or b.syn_ack is not None:
        if b.syn_ack is None:
            return b
        if a.syn_ack is None:
            return a
        return b if a.syn_ack.i < b.syn_ack.i else a
    if a.port != b.port:
        return a if a.port > b.port else b
    return a


def _summarize(c: _Conn) -> ConnectionSummary:
    cl = _client_flow(c)
    sv = cl.rev
    names: dict[int, Side] = {id(cl): "client", id(sv): "server"}

    handshake: Handshake
    if cl.syn is None and sv.syn_ack is None:
        handshake = "missing"
    elif c.handshake_done and cl.syn is not None and sv.syn_ack is not None:
        handshake = "complete"
    else:
        handshake = "partial"

    # Close: see "Close rule" in the module docstring.
    fins = sorted((f for f in (cl, sv) if f.fin is not None), key=lambda f: _pos(f.fin))
    rsts = sorted((f for f in (cl, sv) if f.rst is not None), key=lambda f: _pos(f.rst))
    first_rst = rsts[0] if rsts else None
    close: Close
    if first_rst is not None and (len(fins) < 2 or _pos(first_rst.rst) < _pos(fins[1].fin)):
        close = "rst"
    elif len(fins) == 2:
        close = "fin"
    elif fins:
        close = "fin-unanswered"
    else:
        close = "none"
    close_packets: int | None = None
    if close == "fin":
        first, second = fins
        answer = second.fin
        assert answer is not None
        merged = (
            bool(answer.p.flags & ACK) and _covers(answer.p.ack, first.fin_end) and not second.acked_fin_early
        )
        close_packets = 3 if merged else 4

    # Backoff of the most-retransmitted segment; gaps from the original send (see summary.py).
    run = c.best_run
    gaps: list[float] = []
    backoff_frames: list[FrameRef] = []
    if run is not None:
        gaps = [_secs(b.time_ns - a.time_ns) for a, b in itertools.pairwise(run.sends)]
        backoff_frames = _refs(run.sends)

    keepalive: KeepaliveTiming | None = None
    prober = _prober(cl, sv)
    if prober is not None and prober.ka_first is not None:
        keepalive = KeepaliveTiming(
            first_after_idle_s=_secs(prober.ka_first.p.time_ns - prober.ka_idle_ref),
            interval_s=_secs(statistics.median(prober.ka_gaps)) if prober.ka_gaps else None,
        )

    summary = ConnectionSummary(
        client=_endpoint(cl),
        server=_endpoint(sv),
        handshake=handshake,
        close=close,
        initiator=names[id(fins[0])] if fins else None,
        close_packets=close_packets,
        rst_from=names[id(first_rst)] if first_rst is not None else None,
        retransmissions=SideCounts(client=cl.retx, server=sv.retx),
        backoff_gaps_s=gaps,
        keepalive_probes=SideCounts(client=cl.ka, server=sv.ka),
        keepalive=keepalive,
        zero_window=SideCounts(client=cl.zw, server=sv.zw),
        duration_s=_secs(c.last.time_ns - c.first.time_ns),
        first_frame=_ref(c.first),
        last_frame=_ref(c.last),
        syn=_ref(cl.syn.p if cl.syn is not None else sv.syn.p if sv.syn is not None else None),
        fins=SideFrames(client=_refs(cl.fins), server=_refs(sv.fins)),
        rsts=SideFrames(client=_refs(cl.rsts), server=_refs(sv.rsts)),
        retransmission_frames=SideFrames(client=_refs(cl.retx_frames), server=_refs(sv.retx_frames)),
        keepalive_frames=SideFrames(client=_refs(cl.ka_frames), server=_refs(sv.ka_frames)),
        zero_window_frames=SideFrames(client=_refs(cl.zw_frames), server=_refs(sv.zw_frames)),
        backoff_frames=backoff_frames,
        last_activity=_ref(c.last_activity),
        oldest_unacked=_ref(_oldest_unacked(cl, sv)),
        stream=c.index,
        packets=c.packets,
    )
    summary.notes = _notes(c, cl, sv, names, summary)
    return summary


def _prober(cl: _Flow, sv: _Flow) -> _Flow | None:
    """The side that sent the most keep-alive probes (ties: the one that started first)."""
    best: _Flow | None = None
    for f in (cl, sv):
        if not f.ka:
            continue
        if best is None or f.ka > best.ka or (f.ka == best.ka and _pos(f.ka_first) < _pos(best.ka_first)):
            best = f
    return best


def _acked(f: _Flow, end: int) -> bool:
    return f.acked_upto is not None and _covers(f.acked_upto, end)


def _oldest_unacked(cl: _Flow, sv: _Flow) -> TcpPacket | None:
    """First send of the oldest segment (data, SYN or FIN) the peer never acknowledged."""
    oldest: tuple[int, TcpPacket] | None = None
    for f in (cl, sv):
        for end, p, i in f.unacked:
            if _acked(f, end):
                continue  # acknowledged, only left behind by the oldest-first forgetting
            if oldest is None or i < oldest[0]:
                oldest = (i, p)
    return oldest[1] if oldest is not None else None


def _endpoint(f: _Flow) -> str:
    return f"[{f.addr}]:{f.port}" if ":" in f.addr else f"{f.addr}:{f.port}"


def _notes(c: _Conn, cl: _Flow, sv: _Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    """Short sentences a person can read next to the numbers."""
    notes = _handshake_notes(cl, sv, s)
    run = c.best_run
    for f in (cl, sv):
        if not f.retx:
            continue
        text = f"{names[id(f)]} retransmitted {_plural(f.retx, 'time')}"
        if run is not None and c.best_run_flow is f and s.backoff_gaps_s:
            text += " with gaps " + ", ".join(_fmt(g) for g in s.backoff_gaps_s) + " s"
            if run.original is None:
                text += " (the original send was not captured: gaps start at the first retransmission)"
            text += _run_ending(f, run, names)
        notes.append(text)
    for f in (cl, sv):
        if f.ka:
            notes += _keepalive_notes(f, names)
    for f in (cl, sv):
        if f.zw:
            notes.append(f"{names[id(f)]} advertised a zero window {_plural(f.zw, 'time')}")
    notes += _close_notes(cl, sv, names, s)
    return notes


def _handshake_notes(cl: _Flow, sv: _Flow, s: ConnectionSummary) -> list[str]:
    if s.handshake == "missing":
        return ["no SYN captured: the connection was already open when the capture started"]
    if s.handshake == "partial":
        if cl.syn is not None and sv.syn_ack is None:
            if sv.rst is not None:
                return ["connection refused: the server answered the SYN with RST"]
            return ["the SYN was never answered: the handshake did not complete"]
        return ["handshake incomplete: the client never acknowledged the SYN+ACK"]
    return []


def _keepalive_notes(f: _Flow, names: dict[int, Side]) -> list[str]:
    who, peer = names[id(f)], names[id(f.rev)]
    text = f"{who} sent {_plural(f.ka, 'keep-alive probe')}"
    if f.ka_first is not None:
        text += f", the first after {_fmt(_secs(f.ka_first.p.time_ns - f.ka_idle_ref))} s idle"
    if f.ka_gaps:
        text += f", then every {_fmt(_secs(statistics.median(f.ka_gaps)))} s"
    text += (
        f"; {peer} answered {_plural(f.rev.ka_acks, 'time')}" if f.rev.ka_acks else f"; {peer} never answered"
    )
    notes = [text]
    if f.ka_zw:
        notes.append(
            f"{f.ka_zw} of {who}'s keep-alive-shaped probes went out while {peer}'s window was 0: "
            "they are zero-window probes (Linux sends those with the keep-alive shape)"
        )
    if f.rst is not None and _pos(f.rst) > _pos(f.ka_last) and not f.rev.ka_acks:
        notes.append(f"RST from {who} after {_plural(f.ka, 'keepalive probe')} (keepalive failure)")
    return notes


def _close_notes(cl: _Flow, sv: _Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    notes: list[str] = []
    other = "server" if s.initiator == "client" else "client"
    if s.close == "fin":
        how = (
            "merged its ACK into its FIN" if s.close_packets == 3 else "acknowledged first, then sent its FIN"
        )
        notes.append(f"{s.initiator} closed first; {other} {how}: {s.close_packets}-packet close")
        if s.rst_from is not None:
            notes.append(f"RST from {s.rst_from} after the FIN exchange (the close stays a FIN close)")
    elif s.close == "fin-unanswered":
        notes.append(f"only {s.initiator} sent FIN; {other} never sent its own")
    elif s.close == "rst":
        rf = cl if s.rst_from == "client" else sv
        text = f"reset by {s.rst_from}"
        if s.initiator is not None:
            text += f" after {s.initiator}'s FIN, before the FIN exchange completed"
        notes.append(text)
        if rf.rst_stateless and s.handshake != "partial":
            notes.append(
                f"the RST has no ACK flag and takes its seq from {names[id(rf.rev)]}'s ACK: "
                f"{s.rst_from} no longer had this connection (socket closed, or the host rebooted)"
            )
    elif not cl.retx and not sv.retx:
        notes.append("no FIN or RST: the connection was still open when the capture ended")
    total = cl.rst_count + sv.rst_count
    if total > 1:
        notes.append(f"{total} RSTs in all (client {cl.rst_count}, server {sv.rst_count})")
    return notes


def _run_ending(f: _Flow, run: _Run, names: dict[int, Side]) -> str:
    """How a run of retransmissions ended: acknowledged, reset, or silence (an RTO abort)."""
    last = run.last
    if last is None:
        return ""
    if _acked(f, run.end):
        return ", then the segment was acknowledged"
    peer = f.rev
    if _pos(f.rst) > last.i:
        return ", then sent RST"
    if _pos(peer.rst) > last.i:
        return f", answered by RST from {names[id(peer)]}"
    if f.lastack_t == last.p.time_ns:  # nothing more from this side
        if last.p.flags & SYN:
            return ", then went silent (connect timeout)"
        if last.p.flags & FIN:
            return ", then went silent, its FIN never acknowledged"
        return ", then went silent (RTO abort: no FIN or RST)"
    return ", never acknowledged"
