"""From a connection's analysis state to its `ConnectionSummary`.

Client and server
-----------------
The client is the sender of the first SYN without ACK; failing that, the receiver of a SYN+ACK;
failing that (no handshake captured), the side with the higher port (ephemeral ports are high,
service ports low); with equal ports, the sender of the connection's first captured segment.

Close rule
----------
* ``rst``: an RST came before both sides had sent a FIN. This includes "one side sent FIN, the
  other answered with RST" (``initiator`` still names the FIN sender, and a note tells the story).
  Not an RST the SYN's sender sent, before any SYN+ACK, for the peer's ACK of an earlier
  connection on the 4-tuple (``Flow.rst_stray``): that one resets the earlier connection, whose
  summary says so (`notes.link_reused`), and this one goes on. Nor an RST whose own side sent
  more after it (`flows.rst_disowned`): no socket of that side sent it (forged), and it closed
  nothing; unless its peer took it (`flows.rst_taken`: the peer answered only with RSTs of no
  socket after it), when it reset the peer and is the close's RST.
* ``fin``: both sides sent FIN before any RST. An RST after both FINs (a late segment hitting a
  closed socket) leaves the close a FIN close; ``rst_from`` is still set and a note says so.
* ``fin-unanswered``: one side sent FIN, no RST, the other side no FIN.
* ``none``: neither FIN nor RST.

``close_packets`` (FIN closes only) is 3 when the second FIN also acknowledges the first and its
sender had not acknowledged the first FIN in an earlier segment; otherwise 4 (a separate ACK came
first, or the FINs crossed).

Other facts
-----------
* ``backoff_gaps_s`` / ``backoff_frames``: the most-retransmitted segment (same seq, same sender;
  counting every kind of ``tcp.analysis.retransmission``). Ties go to a segment whose original
  send was captured, then to the later one. The frames are the original send, then each
  retransmission; the gaps are between successive sends, **the first gap measured from the
  original send** (so with RTO doubling they read 0.2, 0.4, 0.8, ... like
  ``kernel.timers.backoff_schedule``). When the original send was not captured (or was already
  acknowledged, for a spurious retransmission) the list starts at the first retransmission.
  Evidence caps at 100 sends.
* ``keepalive``: for the side that sent the most probes. ``first_after_idle_s`` runs from the
  last segment the *peer* sent before the first probe (what resets Linux's keep-alive timer:
  tp->rcv_tstamp), skipping the peer's own probes; if the peer sent nothing, from the prober's
  previous segment. ``interval_s`` is the median gap between successive probes of that side (None
  with a single probe); answered probes make it the idle time again.
* ``last_activity``: the last segment of either side carrying data, SYN or FIN (keep-alive probes
  excluded, retransmissions included).
* ``oldest_unacked``: the first send of the oldest segment with data, SYN or FIN that the peer
  never acknowledged by the end of the input: the segment Linux's retransmission timer and its
  budget (tcp_retries2, TCP_USER_TIMEOUT) follow. ``head_frames``: its sends, it first (its run,
  when it was retransmitted: not always the most-retransmitted segment's).
* ``stream``: the connection's index in order of first segment (tcp.stream); ``packets``: its
  segments, both directions.
"""

from __future__ import annotations

import itertools
import statistics

from orchestrator.pcap.reader import ACK, TcpPacket, seconds
from orchestrator.tcp.connection import (
    Close,
    ConnectionSummary,
    FrameRef,
    Handshake,
    KeepaliveTiming,
    Side,
    SideCounts,
    SideFrames,
)
from orchestrator.tcp.flows import (
    M32,
    QUICK_NS,
    Conn,
    Flow,
    Run,
    Seen,
    acked,
    covers,
    last_probe_answered,
    pos,
    probe_gaps,
    probe_reset,
    rst_disowned,
    rst_taken,
    secs,
)
from orchestrator.tcp.notes import describe

__all__ = ["summarize"]


def summarize(c: Conn) -> ConnectionSummary:
    cl = _client_flow(c)
    sv = cl.rev
    names: dict[int, Side] = {id(cl): "client", id(sv): "server"}

    handshake: Handshake
    if cl.syn is None and sv.syn_ack is None:
        handshake = "missing"
    elif c.handshake_done and cl.syn is not None and sv.syn_ack is not None:
        handshake = "complete"
    elif (
        left_handshake(c, cl, cl.syn)
        if sv.syn_ack is None
        else cl.syn is None and left_handshake(c, sv, sv.syn_ack)
    ):
        handshake = "complete"  # the capture lacks the SYN+ACK (or the SYN), not the kernels
    else:
        handshake = "partial"

    # Close: see "Close rule" in the module docstring.
    fins = _in_order(cl, cl.fin, sv, sv.fin)
    rsts = _in_order(cl, _closing_rst(cl), sv, _closing_rst(sv))
    first_rst = rsts[0] if rsts else None
    close: Close
    if first_rst is not None and (len(fins) < 2 or pos(first_rst.rst) < pos(fins[1].fin)):
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
            bool(answer.p.flags & ACK) and covers(answer.p.ack, first.fin_end) and not second.acked_fin_early
        )
        close_packets = 3 if merged else 4

    # Backoff of the most-retransmitted segment; gaps from the original send (see tcp/connection.py).
    run = c.best_run
    gaps: list[float] = []
    backoff_frames: list[FrameRef] = []
    copy_gap = _copy_gap(cl, sv)
    copied = copy_gap is not None
    if run is not None:
        sends = _resent(run.sends, copied)
        gaps = [round((b.time_ns - a.time_ns) / 1e9, 6) for a, b in itertools.pairwise(sends)]  # secs
        backoff_frames = _refs(sends) if gaps or not copied else []  # copies only: no backoff

    keepalive: KeepaliveTiming | None = None
    prober = _prober(cl, sv)
    if prober is not None and prober.ka_first is not None:
        keepalive = _keepalive(prober)

    unseen = _unseen(cl, sv, names, handshake)
    oldest = _oldest_unacked(
        c, cl, sv, unseen=sv if unseen == "server" else cl if unseen == "client" else None
    )
    head = _run_of(*oldest) if oldest is not None else None
    head_sends = (
        _resent(head.sends, copied) if head is not None else [oldest[1]] if oldest is not None else []
    )
    summary = ConnectionSummary(
        client=_endpoint(cl),
        server=_endpoint(sv),
        handshake=handshake,
        close=close,
        initiator=names[id(fins[0])] if fins else None,
        close_packets=close_packets,
        rst_from=names[id(first_rst)] if first_rst is not None else None,
        retransmissions=SideCounts(cl.retx, sv.retx),
        backoff_gaps_s=gaps,
        keepalive_probes=SideCounts(cl.ka, sv.ka),
        keepalive=keepalive,
        zero_window=SideCounts(cl.zw, sv.zw),
        duration_s=secs(c.last.time_ns - c.first.time_ns),
        first_frame=_ref(c.first),
        last_frame=_ref(c.last),
        syn=_ref(cl.syn.p if cl.syn is not None else sv.syn.p if sv.syn is not None else None),
        fins=_side_frames(cl.fins, sv.fins),
        rsts=_side_frames(cl.rsts, sv.rsts),
        retransmission_frames=SideFrames(_retx_refs(cl), _retx_refs(sv)),
        keepalive_frames=_side_frames(cl.ka_frames, sv.ka_frames),
        zero_window_frames=_side_frames(cl.zw_frames, sv.zw_frames),
        backoff_frames=backoff_frames,
        last_activity=_ref(c.last_activity),
        oldest_unacked=_ref(oldest[1] if oldest is not None else None),
        oldest_unacked_seq=oldest[1].seq if oldest is not None else None,
        stream=c.index,
        packets=c.packets,
        backoff_from=names[id(c.best_run_flow)] if run is not None and c.best_run_flow is not None else None,
        oldest_unacked_from=names[id(oldest[0])] if oldest is not None else None,
        keepalive_from=names[id(prober)] if prober is not None else None,
        keepalive_acks=SideCounts(cl.ka_acks, sv.ka_acks),
        keepalive_answered=SideCounts(_answered(cl), _answered(sv)),
        backoff_after_new_data=run.after_new_data if run is not None and run.original is not None else None,
        keepalive_in_zero_window=SideCounts(cl.ka_zw, sv.ka_zw),
        head_frames=_refs(head_sends),
        head_after_new_data=head.after_new_data if head is not None and head.original is not None else None,
        keepalive_reset=_ref(probe_reset(prober)) if prober is not None else None,
        handshake_retransmitted=SideCounts(_syn_retx(cl), _syn_retx(sv)),
        unseen=unseen,
        copy_gap_s=copy_gap,
        quick_retransmissions=SideCounts(cl.quick, sv.quick),
    )
    summary.notes = describe(c, cl, sv, names, summary)
    return summary


def _syn_retx(f: Flow) -> int:
    """How many times `f` re-sent its SYN or SYN-ACK (its copy, captured twice, not counted)."""
    return f.syn_resent - (f.syn_copy_ns >= 0)


def _resent(sends: list[TcpPacket], copied: bool) -> list[TcpPacket]:
    """A segment's sends, without the copies of a capture that holds its packets twice (`copied`):
    those within QUICK_NS of the send before them, which the kernel's timer never re-sends."""
    if not copied or not sends:
        return sends
    kept = [sends[0]]
    for p in sends[1:]:
        if abs(p.time_ns - kept[-1].time_ns) >= QUICK_NS:
            kept.append(p)
    return kept


def _copy_gap(cl: Flow, sv: Flow) -> float | None:
    """Seconds from the SYN (else the SYN+ACK) to its copy, if the capture holds one."""
    for f in (cl, sv):
        if f.syn_copy_ns >= 0:
            return secs(f.syn_copy_ns)
    return None


def _keepalive(f: Flow) -> KeepaliveTiming:
    """The prober's timing: the first probe's idle, then its last run of probes (Linux counts a
    run from the peer's last segment: an answer starts the count again)."""
    assert f.ka_first is not None and f.ka_last is not None
    answered = last_probe_answered(f)
    gaps = probe_gaps(f, f.ka_gaps if answered else f.ka_run_gaps)
    return KeepaliveTiming(
        first_after_idle_s=secs(f.ka_first.p.time_ns - f.ka_idle_ref),
        interval_s=secs(statistics.median(gaps)) if gaps else None,
        run_probes=0 if answered else f.ka_run,
        run_from=None if answered or not f.ka_run_ref else seconds(f.ka_run_ref),
        run_from_frame=None if answered or not f.ka_run_ref else _ref(f.ka_run_p),
    )


def _answered(f: Flow) -> int:
    """The probes of `f` the peer answered: each run it ended, and the last if it was answered."""
    if f.ka_last is None:
        return 0
    return f.ka_answered + (1 if last_probe_answered(f) else 0)


def _ref(p: TcpPacket | None) -> FrameRef | None:
    return None if p is None else FrameRef(p.file, p.frame, p.time)


def _refs(ps: list[TcpPacket]) -> list[FrameRef]:
    return [FrameRef(p.file, p.frame, p.time) for p in ps]


def _side_frames(client: list[TcpPacket], server: list[TcpPacket]) -> SideFrames:
    return SideFrames(_refs(client) if client else [], _refs(server) if server else [])


def _retx_refs(f: Flow) -> list[FrameRef]:
    if f.retx_refs is not None:
        return f.retx_refs
    return _refs(f.retx_frames) if f.retx_frames else []


def _in_order(a: Flow, sa: Seen | None, b: Flow, sb: Seen | None) -> list[Flow]:
    """Those of `a` and `b` whose segment (`sa`, `sb`) is set, in stream order (ties: `a`)."""
    if sa is None:
        return [] if sb is None else [b]
    if sb is None:
        return [a]
    return [b, a] if sb.i < sa.i else [a, b]


def _closing_rst(f: Flow) -> Seen | None:
    """`f`'s first RST, if it may close the connection (see "Close rule")."""
    return f.rst if f.rst is not None and (not rst_disowned(f) or rst_taken(f)) else None


def _client_flow(c: Conn) -> Flow:
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


def _prober(cl: Flow, sv: Flow) -> Flow | None:
    """The side whose keep-alive probes tell the connection's story: one that reset after its
    unanswered probes (its keep-alive abort ended it), then one whose last probes went
    unanswered (heading for an abort) before one whose peer answered, then the one that sent
    the most (ties: the one that started first). The first matters when both sides probe: the
    peer's probe that crosses the abort's RST meets no socket, so its last probe is unanswered
    too (measured: the netns keepalive_both_one_way case, 94 us apart)."""
    if not cl.ka and not sv.ka:
        return None
    probers = [f for f in (cl, sv) if f.ka and f.ka_first is not None]
    if not probers:
        return None
    return max(probers, key=lambda f: (_reset_after(f), _unanswered(f), f.ka, -pos(f.ka_first)))


def _reset_after(f: Flow) -> bool:
    """Whether `f`'s first RST came after its last keep-alive probe, which went unanswered."""
    return f.rst is not None and f.ka_last is not None and pos(f.rst) > pos(f.ka_last) and _unanswered(f)


def _unanswered(f: Flow) -> bool:
    return f.ka_last is not None and not last_probe_answered(f)


def _oldest_unacked(c: Conn, cl: Flow, sv: Flow, unseen: Flow | None) -> tuple[Flow, TcpPacket] | None:
    """First send of the oldest segment (data, SYN or FIN) the peer never acknowledged, and its
    sender. Where the capture holds none of the peer's segments, nothing is ever seen
    acknowledged, so the sender's own segments tell: a SYN (SYN+ACK) its sender went on from
    (`left_handshake`) was answered, and the timer retransmits the oldest segment not
    acknowledged, so those before the most-retransmitted one were acknowledged. Where the
    peer's direction is missing from the capture (`unseen`), only a retransmission shows a
    segment went unacknowledged: the most-retransmitted one is then the oldest."""
    if not cl.unacked and not sv.unacked:
        return None
    oldest: tuple[int, Flow, TcpPacket] | None = None
    for f in (cl, sv):
        one_way = not f.rev.lastack_t
        run = c.best_run if one_way and c.best_run_flow is f else None
        if f.rev is unseen and run is None:
            continue
        for end, p, i in f.unacked:
            if acked(f, end):
                continue  # acknowledged, only left behind by the oldest-first forgetting
            if one_way and _is_handshake(f, p, end) and left_handshake(c, f, f.syn or f.syn_ack):
                continue
            if run is not None and covers(run.seq, end) and p.seq != run.seq:
                continue
            if f.rev is unseen and run is not None and p.seq != run.seq:
                continue
            if oldest is None or i < oldest[0]:
                oldest = (i, f, p)
    return (oldest[1], oldest[2]) if oldest is not None else None


def _unseen(cl: Flow, sv: Flow, names: dict[int, Side], handshake: Handshake) -> Side | None:
    """The side whose direction the capture lacks: it sent nothing captured, yet the other went
    on past a handshake whose answer from it is not there. A side that sent nothing and left no
    such trace may only be silent (a cut, or idle): not this. (A one-way capture that starts
    after the handshake is not told from a silent peer here.)"""
    for f in (sv, cl):
        o = f.rev
        if not f.lastack_t and o.lastack_t and handshake == "complete" and (o.syn or o.syn_ack):
            return names[id(f)]
    return None


def left_handshake(c: Conn, f: Flow, syn: Seen | None) -> bool:
    """Whether `f`, which sent the SYN (or SYN+ACK) `syn`, sent anything after it that only an
    established socket sends. A SYN_SENT socket sends only SYNs (and, for a stray ACK, an RST
    without ACK), a SYN_RECV request only SYN+ACKs; so data, a FIN, a probe or its answer, an
    RST with ACK, an ACK other than the SYN's, or (the peer sending nothing captured) any
    segment beyond its SYNs and RSTs mean the handshake completed at `f`'s end, whatever the
    capture lacks of the peer's side of it. (Only state every pass keeps: `fastpass` keeps the
    latest segment as a stand-in without flags.)"""
    if syn is None:
        return False
    p = syn.p
    alone = not f.rev.lastack_t  # every segment of the connection is f's
    return bool(
        f.nextseq != (p.seq + 1 + p.payload_len) & M32  # past the SYN (and any data it carried: TFO)
        or f.fin is not None
        or f.ka
        or f.ka_acks
        or (f.rst is not None and f.rst.p.flags & ACK)
        or f.lastack != p.ack
        or (alone and c.packets > 1 + f.syn_resent + f.rst_count)
    )


def _is_handshake(f: Flow, p: TcpPacket, end: int) -> bool:
    """Whether the unacknowledged segment `p` (ending at `end`) is `f`'s SYN or SYN+ACK: by its
    seq, as stand-ins carry no flags."""
    first = f.syn or f.syn_ack
    return first is not None and p.seq == first.p.seq and end == (first.p.seq + 1) & M32


def _run_of(f: Flow, p: TcpPacket) -> Run | None:
    """The retransmissions of the segment whose first send is `p`, if they were kept: the run
    of its seq that starts with it (the original, or the retransmission standing in for it)."""
    run = f.runs.get(p.seq)
    first = run.sends[0] if run is not None and run.sends else None
    if first is None or (first.file, first.frame, first.time_ns) != (p.file, p.frame, p.time_ns):
        return None
    return run


def _endpoint(f: Flow) -> str:
    return f"[{f.addr}]:{f.port}" if ":" in f.addr else f"{f.addr}:{f.port}"
