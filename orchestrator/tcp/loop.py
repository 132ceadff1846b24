"""The reference loop: one pass over (position, segment) pairs that keeps each connection's
state and decides each segment's Wireshark flags, a port of Wireshark's
``tcp_analyze_sequence_number`` (see `analysis` for what it agrees with, and how).

`analysis` runs it over a whole capture; the vectorised pass (`vector`) runs it for the segments
it does not take itself, carrying the same state (`flows`, `conns`) between its calls.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable

from orchestrator.pcap.reader import ACK, FIN, RST, SYN, TcpPacket
from orchestrator.tcp import flows as fl
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.flows import (
    ANY_RETX,
    DUPACK,
    FACTS,
    KA,
    KA_ACK,
    SPUR,
    ZW,
    ZWP,
    ZWP_ACK,
    Conn,
    Flow,
    labels_of,
)
from orchestrator.tcp.notes import link_reused
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

__all__ = ["MAX_UNACKED", "Mark", "analyze_stream", "summarize_pass"]

# Unacknowledged segments remembered per side (memory bound). Read at each call of the loop.
MAX_UNACKED = fl.MAX_UNACKED

# Called for every TCP segment with its connection's index (tcp.stream) and its labels: the
# Wireshark flags the analysis decided for it (see `flows.LABELS`).
Mark = Callable[[TcpPacket, int, frozenset[str]], None]


def summarize_pass(passing: Callable[[], list[Conn]]) -> list[ConnectionSummary]:
    """Run a pass with the cyclic collector paused, then summarise its connections."""
    paused = gc.isenabled()
    gc.disable()
    try:
        conns = passing()
        summaries = [summarize(c) for c in conns]
        link_reused(conns, summaries)
        for c in conns:  # undo the cycles, so the state is freed now, collector or not
            del c.a.conn, c.a.rev, c.b.conn, c.b.rev
        return summaries
    finally:
        if paused:
            gc.enable()


def analyze_stream(  # noqa: PLR0915 - the hot loop
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
                if end < seq:  # in order: past 2^32
                    fwd.seq_wraps += 1
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
            fwd.last_p = p
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
            if end < nextseq:  # forward, past 2^32
                fwd.seq_wraps += 1
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
        fwd.last_p = p
        fwd.lastflags = ta
        fwd.reslow()
        if mark is not None:
            mark(p, conn.index, labels_of(ta, flags))

    return conns
