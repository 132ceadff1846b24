"""Per-connection TCP facts, computed in one streaming pass, in agreement with Wireshark.

`analyze` groups TCP segments into connections and returns one `ConnectionSummary` per
connection, in order of first appearance (Wireshark's ``tcp.stream`` order). The state it keeps
is in `flows`, the rarer segments are handled in `segments`, and the summaries (client and
server, close rule, backoff, keep-alive timing) are built in `summarize`.

Wireshark agreement
-------------------
The per-segment flags are a port of ``tcp_analyze_sequence_number`` in Wireshark's
``epan/dissectors/packet-tcp.c``, checked against tshark 4.0.17 (the version on these machines)
with crafted captures and a randomised differential test (``tests/unit/test_analysis.py``):

* ``tcp.analysis.retransmission`` is set for plain retransmissions **and** for fast and spurious
  retransmissions (the dissector adds the retransmission expert item to those too), but **not**
  for out-of-order segments. The order of the checks is tshark 4.0's: a keep-alive is never a
  retransmission; then spurious (data entirely at or below the peer's last ACK), then fast (>= 2
  duplicate ACKs from the peer, seq equal to their ACK, within 20 ms of the last of them), then
  out-of-order (within the initial RTT, or 3 ms without a captured handshake, of the segment that
  last advanced the sequence, and not an exact repeat of it), then plain retransmission (seq
  below the next expected one).
* ``tcp.analysis.keep_alive``: 0 or 1 byte, seq = next expected - 1, no SYN/FIN/RST, unless it
  is a zero-window probe (1 byte at the next expected seq while the peer's window is 0), which
  Wireshark checks first. Linux sends its own zero-window probes as 0-byte segments at
  snd_una - 1, so Wireshark (and so we) count them as keep-alives; the notes say so when the
  peer's window was 0 at the time.
* ``tcp.analysis.zero_window``: window 0 on a segment without SYN/FIN/RST, so a window-0 RST does
  not count; nor does a zero-window probe (Wireshark skips the check for it).
* The initial RTT (the out-of-order threshold) is the time from the latest SYN to the first ACK
  without SYN; a SYN stamped exactly 0 counts as no SYN.
* Two quirks of tshark 4.0.17, pinned down by experiment (the current source reads
  differently): after an "ACKed unseen segment" whose mark is not behind the peer's next seq,
  the peer's duplicate-ACK counter is set to -1, which, being unsigned there, makes a matching
  segment within 20 ms a *fast* retransmission; and the same SYN again mid-connection resets the
  next expected seq to the highest contiguous one (Wireshark issue 17616).
* Time comparisons use integer nanoseconds, as Wireshark does.

One deliberate gap: Wireshark stops tracking unacknowledged segments after 10,000 of them in one
direction; we do not model that (it only matters for captures missing one direction).

Connections
-----------
Keyed by the unordered 4-tuple. As in Wireshark, a SYN (without ACK) whose sequence number
differs from the one already known for its sender on that tuple starts a new connection (port
reuse); a SYN with the same sequence number is a retransmission. Data without a new SYN stays in
the same connection, so "peer rebooted, we send, it answers RST" is one connection.

The input may be a time-ordered merge of several files (each host's own sends), so
"before/after" is position in the input stream, never frame numbers, which only order frames
within one file.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.pcap.reader import ACK, FIN, RST, SYN, IcmpError, TcpCapture, TcpPacket, read_tcp
from orchestrator.tcp import flows as fl
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.flows import (
    ANY_RETX,
    DUPACK,
    FACTS,
    KA,
    KA_ACK,
    LABELS,
    MAX_EVIDENCE,
    SPUR,
    ZW,
    ZWP,
    ZWP_ACK,
    Conn,
    Flow,
    Label,
    labels_of,
)
from orchestrator.tcp.segments import (
    FlowKey,
    classify_behind,
    forget_acked,
    record_control,
    record_facts,
    set_bases,
    start_connection,
    watch_acks,
)
from orchestrator.tcp.summarize import summarize

__all__ = [
    "LABELS",
    "MAX_EVIDENCE",
    "MAX_UNACKED",
    "Analysis",
    "Label",
    "Mark",
    "analysis_of",
    "analyze",
    "analyze_capture",
    "analyze_file",
]

# Unacknowledged segments remembered per side (memory bound). Read at each call of `analyze`.
MAX_UNACKED = fl.MAX_UNACKED

# Called for every TCP segment with its connection's index (tcp.stream) and its labels: the
# Wireshark flags the analysis decided for it (see `flows.LABELS`).
Mark = Callable[[TcpPacket, int, frozenset[str]], None]


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
    icmp_errors: list[IcmpError] = field(default_factory=list)  # destination unreachable, capped


def analyze_capture(capture: TcpCapture, *, mark: Mark | None = None, vectorised: bool = True) -> Analysis:
    """Read a whole capture and analyse it. Without `mark`, the vectorised pass (`vector`) does
    the work (`vectorised=False`: the loop alone, the reference): the same result, faster."""
    if mark is None and vectorised:
        from orchestrator.pcap.columns import read_chunks  # noqa: PLC0415 - imports this module
        from orchestrator.tcp.vector import analyze_chunks  # noqa: PLC0415

        conns = _summarize(lambda: analyze_chunks(read_chunks(capture)))
    else:
        conns = _analyze(capture.pairs(), mark)
    return analysis_of(capture, conns)


def analysis_of(capture: TcpCapture, conns: list[ConnectionSummary]) -> Analysis:
    """An `Analysis` of `conns` with what the reader said about the file (read to its end)."""
    return Analysis(
        connections=conns,
        packets=capture.packets,
        tcp_packets=capture.tcp_packets,
        truncated=capture.truncated,
        files=[capture.name],
        problems=[capture.problem] if capture.problem else [],
        linktypes=sorted(capture.linktypes),
        icmp_errors=list(capture.icmp_errors),
    )


def analyze_file(path: Path | str, *, mark: Mark | None = None) -> Analysis:
    """`read_tcp` then `analyze_capture`. Raises `CaptureFormatError` for a file that is not a capture."""
    return analyze_capture(read_tcp(path), mark=mark)


def analyze(packets: Iterable[TcpPacket], *, mark: Mark | None = None) -> list[ConnectionSummary]:
    """Group TCP segments (in capture order) into connections and summarise each.

    One pass, per-connection state only; evidence lists are capped at `MAX_EVIDENCE` frames
    while counts stay exact. `mark`, if given, is called for every segment (see `Mark`).

    The cyclic garbage collector is paused during the pass: the pass creates no garbage cycles
    (a connection's objects stay reachable until the summaries are built), and the collector's
    repeated walks over the live per-connection state cost a quarter to a third of the time on big
    captures.
    """
    return _analyze(enumerate(packets, 1), mark)


def _analyze(stream: Iterable[tuple[int, TcpPacket]], mark: Mark | None) -> list[ConnectionSummary]:
    return _summarize(lambda: _run(stream, mark))


def _summarize(passing: Callable[[], list[Conn]]) -> list[ConnectionSummary]:
    """Run a pass with the cyclic collector paused, then summarise its connections."""
    paused = gc.isenabled()
    gc.disable()
    try:
        conns = passing()
        summaries = [summarize(c) for c in conns]
        for c in conns:  # undo the cycles, so the state is freed now, collector or not
            del c.a.conn, c.a.rev, c.b.conn, c.b.rev
        return summaries
    finally:
        if paused:
            gc.enable()


def _run(  # noqa: PLR0915 - the hot loop
    stream: Iterable[tuple[int, TcpPacket]],
    mark: Mark | None,
    flows: dict[FlowKey, Flow] | None = None,
    conns: list[Conn] | None = None,
) -> list[Conn]:
    """The pass itself, over (position in the stream, segment) pairs. The common segment
    (in-order data or a plain ACK, from a flow whose `slow` flag is down) takes a short way that
    does only what the long way would do for it; anything else takes the long way, a port of
    Wireshark's tcp_analyze_sequence_number. `flows` and `conns`: state to carry on from (the
    vectorised pass calls this for the segments it does not take itself)."""
    if flows is None:
        flows = {}
    if conns is None:
        conns = []
    get = flows.get
    m32, half = fl.M32, fl.HALF
    max_unacked = MAX_UNACKED

    for i, p in stream:
        _frame, _t, src, sport, dst, dport, seq, ack, flags, window, seglen, _file, tns = p
        fwd = get((src, sport, dst, dport))
        if (
            fwd is not None
            and not fwd.slow
            and flags & 0x17 == ACK  # ACK without SYN, FIN or RST
            and seq == fwd.nextseq
            and seq  # 0 would be an unset nextseq
            and window
            and seglen != 1
        ):
            # ---- The short way: in order, window open, not a possible probe -------------
            # Neither a keep-alive (seq is the next expected) nor a zero-window probe (not 1
            # byte) nor a zero window; `lastflags` holds no KA or ZWP bit (else `slow`), and
            # none is set here, so it is left alone.
            conn = fwd.conn
            rev = fwd.rev
            conn.last = p
            conn.packets += 1
            lastack = fwd.lastack
            ta = 0
            if ack != lastack:
                fwd.dupacks = 0
            mark_seq = rev.maxseq  # "ACKed unseen segment": see the long way
            if ack != mark_seq and mark_seq and 0 < (ack - mark_seq) & m32 < half:
                if ((mark_seq - rev.nextseq) & m32) >= half:
                    rev.maxseq = rev.nextseq
                else:
                    rev.dupacks = -1
            if seglen:
                end = (seq + seglen) & m32
                rla = rev.lastack
                if rla and not 0 < (end - rla) & m32 < half:
                    ta = SPUR
                fwd.nextseq = end
                fwd.nextseq_t = tns
                mark_seq = fwd.maxseq
                if seq == mark_seq or not mark_seq:
                    fwd.maxseq = end
                conn.last_activity = p
                if ta:
                    record_facts(conn, fwd, rev, p, i, ta, end)
                else:
                    q = fwd.unacked
                    if len(q) < max_unacked:
                        q.append((end, p, i))
            else:
                if ack == lastack and window == fwd.window:
                    if rev.lastflags & KA:
                        ta = KA_ACK
                        fwd.ka_acks += 1
                    else:
                        fwd.dupacks = 1 if fwd.dupacks == -1 else fwd.dupacks + 1
                        ta = DUPACK
                if not fwd.maxseq:
                    fwd.maxseq = seq
            if ack != lastack:
                q = rev.unacked
                if q and (ack - q[0][0]) & m32 < half:
                    if rev.runs:
                        forget_acked(rev, q, ack)
                    else:  # the same, inlined: no retransmitted segment to forget
                        rev.acked_upto = ack
                        q.popleft()
                        while q and (ack - q[0][0]) & m32 < half:
                            q.popleft()
            fwd.window = window
            fwd.lastack = ack
            fwd.lastack_t = tns
            if mark is not None:
                mark(p, conn.index, labels_of(ta, flags))
            continue

        # ---- The long way --------------------------------------------------------------
        if fwd is None or flags & SYN:
            fwd = start_connection(fwd, p, i, flows, conns)
        conn = fwd.conn
        rev = fwd.rev
        conn.last = p
        conn.packets += 1
        if fwd.fresh:
            set_bases(fwd, rev, seq, ack, flags)

        # Wireshark's tcp_analyze_sequence_number.
        nextseq = fwd.nextseq
        lastack = fwd.lastack
        if seglen == 1 and seq == nextseq and rev.window == 0:
            ta = ZWP  # a zero-window probe skips every check up to "finished_fwd"
        elif flags & (SYN | FIN | RST) or (window and seglen > 1):
            ta = 0
        else:
            ta = 0 if window else ZW
            if seglen <= 1 and seq == (nextseq - 1) & m32:
                ta |= KA
            if seglen == 0 and seq == nextseq and ack == lastack:
                if window:
                    if window == fwd.window:
                        if rev.lastflags & KA:
                            ta |= KA_ACK
                        else:
                            fwd.dupacks = 1 if fwd.dupacks == -1 else fwd.dupacks + 1
                            ta |= DUPACK
                elif fwd.window == 0 and rev.lastflags & ZWP:
                    ta |= ZWP_ACK
        if ack != lastack:
            fwd.dupacks = 0
        if flags & ACK:
            # "ACKed unseen segment". tshark 4.0 moves the mark up to the peer's next seq when
            # it is behind it, else sets the peer's duplicate-ACK counter to -1 (see
            # classify_behind). Found by experiment: the current source differs.
            mark_seq = rev.maxseq
            if mark_seq and 0 < ((ack - mark_seq) & m32) < half:
                if ((mark_seq - rev.nextseq) & m32) >= half:
                    rev.maxseq = rev.nextseq
                else:
                    rev.dupacks = -1
        if seglen or flags & (SYN | FIN):
            if not ta & KA:
                rla = rev.lastack
                over = (seq + seglen - rla) & m32
                if seglen and rla and (over == 0 or over >= half):
                    ta |= SPUR
                elif (
                    nextseq
                    and ((seq - nextseq) & m32) >= half
                    and not (seglen > 1 and (nextseq - 1) & m32 == seq)  # data right after a probe byte
                ):
                    ta |= classify_behind(conn, fwd, rev, p, nextseq, rla)
            end = (seq + seglen + 1) & m32 if flags & (SYN | FIN) else (seq + seglen) & m32
        else:
            end = seq
        if (nextseq == 0 or 0 < ((end - nextseq) & m32) < half) and not ta & ZWP:
            fwd.nextseq = nextseq = end
            fwd.nextseq_t = tns
        mark_seq = fwd.maxseq
        if (seq == mark_seq or not mark_seq) and not ta & ZWP:
            fwd.maxseq = nextseq

        # Facts of our own (before the flow's state moves on).
        if ta & FACTS:
            record_facts(conn, fwd, rev, p, i, ta, end)
        if (seglen or flags & (SYN | FIN)) and not ta & KA:
            conn.last_activity = p
            if not ta & ANY_RETX:
                q = fwd.unacked
                if len(q) < max_unacked:  # the peer acknowledges nothing: a one-sided capture
                    if q and not 0 < ((end - q[-1][0]) & m32) < half:
                        fwd.messy = True  # out of sequence order (an out-of-order segment)
                    q.append((end, p, i))
        if flags & ACK and ack != lastack:
            q = rev.unacked
            if q and ((ack - q[0][0]) & m32) < half:
                if rev.runs:
                    forget_acked(rev, q, ack)
                else:
                    rev.acked_upto = ack
                    q.popleft()
                    while q and ((ack - q[0][0]) & m32) < half:
                        q.popleft()
        if flags & (SYN | FIN | RST):
            record_control(conn, fwd, rev, p, i)
        elif fwd.watch:
            watch_acks(conn, fwd, rev, p)

        fwd.window = window
        fwd.lastack = ack
        fwd.lastack_t = tns
        fwd.lastflags = ta
        fwd.reslow()
        if mark is not None:
            mark(p, conn.index, labels_of(ta, flags))

    return conns
