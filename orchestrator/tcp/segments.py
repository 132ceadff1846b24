"""What the analysis does with the rarer segments: new connections, SYN, FIN and RST, segments
behind the expected sequence number, retransmissions, keep-alives, and the ACKs that complete a
handshake or a close. Kept out of the hot loop in `analysis`, which calls these."""

from __future__ import annotations

from collections import deque

from orchestrator.pcap.reader import ACK, FIN, RST, SYN, TcpPacket
from orchestrator.tcp import flows as fl
from orchestrator.tcp.flows import (
    ANY_RETX,
    FAST,
    HALF,
    KA,
    KA_ACK,
    M32,
    MAX_EVIDENCE,
    MAX_KA_GAPS,
    MAX_RUNS,
    OOO,
    QUICK_NS,
    RETX,
    SYN_COPY_NS,
    ZW,
    Conn,
    Flow,
    Run,
    Seen,
    acked,
    covers,
    crossed,
    peer_real_t,
)

__all__ = [
    "classify_behind",
    "control_facts",
    "forget_acked",
    "record_control",
    "record_facts",
    "set_bases",
    "start_connection",
    "watch_acks",
]

_OOO_DEFAULT_NS = 3_000_000  # Wireshark's out-of-order threshold without an initial RTT
_FAST_WINDOW_NS = 20_000_000  # fast retransmission: within 20 ms of the last duplicate ACK

FlowKey = tuple[str, int, str, int]


def start_connection(
    fwd: Flow | None, p: TcpPacket, i: int, flows: dict[FlowKey, Flow], conns: list[Conn]
) -> Flow:
    """A first segment on a 4-tuple, or a SYN: a new connection, or the same SYN again."""
    if fwd is not None:
        if p.flags & (SYN | ACK) != SYN or not fwd.base_set:
            return fwd
        if p.seq == fwd.base_seq:
            # The same SYN again: Wireshark restores nextseq, which an RST with seq = the
            # peer's ACK may have moved (its issue 17616). It will count as a retransmission.
            fwd.seq_wraps += crossed(fwd.nextseq, fwd.maxseq)
            fwd.nextseq = fwd.maxseq
            return fwd
        # A SYN with a new initial sequence number: the 4-tuple is reused.
    conn = Conn(len(conns), p, i)
    conns.append(conn)
    flows[(p.src, p.sport, p.dst, p.dport)] = conn.a
    flows[(p.dst, p.dport, p.src, p.sport)] = conn.b
    return conn.a


def set_bases(fwd: Flow, rev: Flow, seq: int, ack: int, flags: int) -> None:
    """Wireshark's base sequence numbers: a SYN's seq, else seq - 1; the peer's from ack - 1."""
    if not fwd.base_set:
        fwd.base_seq = seq if flags & SYN else (seq - 1) & M32
        fwd.base_set = True
    if flags & ACK and not rev.base_set:
        rev.base_seq = (ack - 1) & M32
        rev.base_set = True
    fwd.fresh = not rev.base_set
    fwd.reslow()


def classify_behind(conn: Conn, fwd: Flow, rev: Flow, p: TcpPacket, nextseq: int, rla: int) -> int:
    """A segment below the next expected seq: fast retransmission, out-of-order, or retransmission."""
    tns = p.time_ns
    dt = tns - rev.lastack_t
    # dupacknum is a guint32 there: the -1 left by "ACKed unseen segment" counts as many.
    if (rev.dupacks >= 2 or rev.dupacks == -1) and rla == p.seq and 0 <= dt < _FAST_WINDOW_NS:
        return FAST
    dt = tns - fwd.nextseq_t
    threshold = conn.first_rtt or _OOO_DEFAULT_NS
    if 0 <= dt < threshold and nextseq != (p.seq + p.payload_len + (1 if p.flags & (SYN | FIN) else 0)) & M32:
        return OOO
    return RETX


def record_facts(conn: Conn, fwd: Flow, rev: Flow, p: TcpPacket, i: int, ta: int, end: int) -> None:
    """Counts and evidence for a retransmission, keep-alive, keep-alive ACK or zero window.
    (`arrayloop` keeps a retransmission's facts itself, the same way.)"""
    if ta & ANY_RETX:
        _record_retransmission(conn, fwd, p, i, end)
    elif ta & KA:
        _record_keepalive(fwd, rev, p, i)
    elif ta & KA_ACK:
        fwd.ka_acks += 1
    if ta & ZW:
        fwd.zw += 1
        if len(fwd.zw_frames) < MAX_EVIDENCE:
            fwd.zw_frames.append(p)


def forget_acked(flow: Flow, q: deque[tuple[int, TcpPacket, int]], ack: int) -> None:
    """Drop the segments of `flow` that the peer's `ack` acknowledges, oldest first. Their runs
    of retransmissions stay (`flow.runs` is bounded by MAX_RUNS): a spurious retransmission
    after the ACK continues its segment's history instead of starting another."""
    flow.acked_upto = ack
    while q and ((ack - q[0][0]) & M32) < HALF:
        q.popleft()


def _record_retransmission(conn: Conn, fwd: Flow, p: TcpPacket, i: int, end: int) -> None:
    fwd.retx += 1
    if len(fwd.retx_frames) < MAX_EVIDENCE:
        fwd.retx_frames.append(p)
    seq = p.seq
    runs = fwd.runs
    run = runs.get(seq)
    if run is not None:
        _count_quick(fwd, run.last.p if run.last is not None else run.original, p)
    else:
        if len(runs) >= MAX_RUNS:
            runs.clear()
            best = conn.best_run
            if best is not None and conn.best_run_flow is fwd:
                runs[best.seq] = best
        original = next((e[1] for e in fwd.unacked if e[1].seq == seq), None)
        if original is None and len(fwd.unacked) < fl.MAX_UNACKED:
            # Its first send was not captured (or was already acknowledged): let this one
            # stand for it among the unacknowledged segments.
            fwd.unacked.append((end, p, i))
            fwd.messy = True
        fresh = original is not None and fwd.nextseq_t > original.time_ns
        acked_before = acked(fwd, end)
        run = runs[seq] = Run(seq, end, original, fresh, acked_before)
        _count_quick(fwd, original, p)
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


def _count_quick(fwd: Flow, before: TcpPacket | None, p: TcpPacket) -> None:
    """Count `p` if it came within QUICK_NS of `before`, its segment's previous send."""
    # Either way: a file of two interfaces (dumpcap -i A -i B) is not in time order across them.
    if before is not None and abs(p.time_ns - before.time_ns) < QUICK_NS:
        fwd.quick += 1


def _record_keepalive(fwd: Flow, rev: Flow, p: TcpPacket, i: int) -> None:
    """A keep-alive probe from `fwd`; `fwd`'s state still describes its previous segment."""
    tns = p.time_ns
    if not fwd.lastflags & KA:
        fwd.last_real_t = fwd.lastack_t
    seen = Seen(p, i)
    last = fwd.ka_last
    # The peer's latest segment that was not itself a probe: what resets Linux's keep-alive
    # timer. The peer's own probe is out of the window (tcp_validate_incoming drops it), so it
    # neither answers ours nor starts the count again.
    peer = peer_real_t(rev)
    if last is None:
        # Idle counts from there, or from our own latest segment if the peer sent none.
        fwd.ka_idle_ref = peer or fwd.last_real_t or tns
        fwd.ka_first = seen
    elif len(fwd.ka_gaps) < MAX_KA_GAPS:
        fwd.ka_gaps.append(tns - last.p.time_ns)
    if last is None or peer > last.p.time_ns:
        # The first probe, or the peer sent something since the last one (it answered): a new
        # run starts, counted from the peer's latest segment.
        if last is not None:
            fwd.ka_answered += 1
        fwd.ka_run = 0
        fwd.ka_run_gaps = []
        fwd.ka_run_ref = peer or fwd.ka_idle_ref
        # That segment, when it is the peer's last (a probe after it leaves it unknown).
        fwd.ka_run_p = rev.last_p if peer and peer == rev.lastack_t else None
    elif len(fwd.ka_run_gaps) < MAX_KA_GAPS:
        fwd.ka_run_gaps.append(tns - last.p.time_ns)
    fwd.ka_run += 1
    fwd.ka_last = seen
    fwd.ka += 1
    if rev.window == 0:
        fwd.ka_zw += 1
    if len(fwd.ka_frames) < MAX_EVIDENCE:
        fwd.ka_frames.append(p)


def watch_acks(conn: Conn, fwd: Flow, rev: Flow, p: TcpPacket) -> None:
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
            and covers(p.ack, synack.p.seq + 1)
        ):
            conn.hs_pending = None
            conn.handshake_done = True
        if rev.fin is not None and fwd.fin is None and not flags & FIN and covers(p.ack, rev.fin_end):
            fwd.acked_fin_early = True
    _rewatch(conn, fwd)
    _rewatch(conn, rev)


def _rewatch(conn: Conn, f: Flow) -> None:
    f.watch = (
        conn.rtt_wait
        or conn.hs_pending is f
        or (f.rev.fin is not None and f.fin is None and not f.acked_fin_early)
    )
    f.reslow()


def record_control(conn: Conn, fwd: Flow, rev: Flow, p: TcpPacket, i: int) -> None:
    """SYN, FIN and RST bookkeeping."""
    flags = p.flags
    if flags & SYN:
        if flags & ACK:
            if fwd.syn_ack is None and rev.syn is not None and not conn.handshake_done:
                conn.hs_pending = rev
        elif p.time_ns:  # a zero timestamp means "unset" to Wireshark
            conn.mru_syn = p.time_ns
            conn.rtt_wait = not conn.first_rtt
    control_facts(fwd, rev, p, i)
    watch_acks(conn, fwd, rev, p)


def control_facts(fwd: Flow, rev: Flow, p: TcpPacket, i: int) -> None:
    """The evidence of a SYN, FIN or RST (`record_control` without the state the ACKs are
    watched for, which `arrayloop` keeps itself)."""
    flags = p.flags
    if flags & SYN:
        if flags & ACK:
            if fwd.syn_ack is None:
                fwd.syn_ack = Seen(p, i)
            elif p.seq == fwd.syn_ack.p.seq:
                fwd.syn_resent += 1
                _note_copy(fwd, rev, fwd.synack_last_t, p.time_ns)
            fwd.synack_last_t = p.time_ns
        elif fwd.syn is None:
            fwd.syn = Seen(p, i)
        elif p.seq == fwd.syn.p.seq:
            fwd.syn_resent += 1
            _note_copy(fwd, rev, fwd.syn.p.time_ns, p.time_ns)
    if flags & FIN:
        if fwd.fin is None:
            fwd.fin = Seen(p, i)
            fwd.fin_end = (p.seq + p.payload_len + 1) & M32
        if len(fwd.fins) < MAX_EVIDENCE:
            fwd.fins.append(p)
    if flags & RST:
        # `fwd`'s state still describes its previous segment.
        fwd.pre_rst_t = peer_real_t(fwd)
        fwd.last_rst_t = p.time_ns
        if _answers_stray_ack(fwd, rev, p):
            if fwd.rst_stray is None:
                fwd.rst_stray = Seen(p, i)
        elif fwd.rst is None:
            fwd.rst = Seen(p, i)
            # What a host sends for a segment it has no socket for: RST without ACK, seq = that ACK.
            fwd.rst_stateless = not flags & ACK and rev.lastack_t != 0 and p.seq == rev.lastack
        fwd.rst_count += 1
        if len(fwd.rsts) < MAX_EVIDENCE:
            fwd.rsts.append(p)


def _note_copy(fwd: Flow, rev: Flow, before_ns: int, now_ns: int) -> None:
    """A SYN (SYN+ACK) again soon after the one `before_ns`: a copy if no timer sends so soon
    and nothing came between that makes the kernel send one at once. Linux in SYN_SENT answers
    an unacceptable ACK with an RST and re-sends its SYN 2 jiffies later (TCP_TIMEOUT_MIN;
    measured 9 to 12 ms: a reused 4-tuple's old socket answered the SYN), and a listener
    answers a re-sent SYN with its SYN+ACK at once; the peer's segment, or this side's RST,
    lies between those two, never between a packet and its copy."""
    gap_ns = abs(now_ns - before_ns)  # either way, as `_count_quick`
    answered = rev.lastack_t > min(before_ns, now_ns) or fwd.last_rst_t > min(before_ns, now_ns)
    if fwd.syn_copy_ns < 0 and gap_ns < SYN_COPY_NS and not answered:
        fwd.syn_copy_ns = gap_ns


def _answers_stray_ack(fwd: Flow, rev: Flow, p: TcpPacket) -> bool:
    """An RST from the sender of this connection's SYN, before any SYN+ACK, with seq = the
    peer's latest ACK, which did not acknowledge the SYN: Linux in SYN_SENT answering an
    unacceptable ACK (tcp_rcv_synsent_state_process). That ACK was the peer's for an earlier
    connection on the 4-tuple (a challenge ACK from an established socket, RFC 5961 4, or a
    TIME_WAIT's ACK), so the RST resets that one if anything; the SYN is sent again."""
    syn = fwd.syn
    return (
        syn is not None
        and rev.syn_ack is None
        and not p.flags & ACK
        and rev.lastack_t != 0
        and p.seq == rev.lastack
        and p.seq != (syn.p.seq + 1) & M32
    )
