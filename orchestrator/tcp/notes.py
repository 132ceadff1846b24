"""The notes of a connection summary: short sentences a person can read next to the numbers."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from orchestrator.pcap.reader import ACK, FIN, SYN, TcpPacket
from orchestrator.tcp.connection import ConnectionSummary, Side
from orchestrator.tcp.flows import (
    HALF,
    M32,
    Conn,
    Flow,
    Run,
    acked,
    covers,
    last_probe_answered,
    pos,
    probe_reset,
    rst_disowned,
    secs,
)

__all__ = ["describe", "link_reused"]

# How the note on an RST sent without a socket begins (a NAT-aware verdict retells it).
STATELESS_RST = "the RST has no ACK flag"


def describe(c: Conn, cl: Flow, sv: Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    """The notes for summary `s` of connection `c` (client flow `cl`, server flow `sv`)."""
    notes = _handshake_notes(cl, sv, s) + _stray_notes(cl, sv, names)
    run = c.best_run
    for f in (cl, sv):
        if not f.retx:
            continue
        text = f"{names[id(f)]} retransmitted {_plural(f.retx, 'time')}"
        if run is not None and c.best_run_flow is f and s.backoff_gaps_s:
            if run.count < f.retx:  # other segments too: the gaps are one segment's, not all of them
                text += f"; its most-retransmitted segment {_plural(run.count, 'time')}"
            text += " with gaps " + ", ".join(_fmt(g) for g in s.backoff_gaps_s) + " s"
            if run.original is None:
                text += _no_original(f, run, names)
            text += _run_ending(f, run, names)
        notes.append(text)
    for f in (cl, sv):
        if f.ka:
            notes += _keepalive_notes(f, names, s)
    for f in (cl, sv):
        if f.zw:
            notes.append(f"{names[id(f)]} advertised a zero window {_plural(f.zw, 'time')}")
    notes += _close_notes(c, cl, sv, names, s)
    return notes


def _fmt(s: float) -> str:
    """Seconds for a sentence: 0.2, 1.6, 7200."""
    return f"{s:.3f}".rstrip("0").rstrip(".")


EVEN_GAPS = 0.2  # gaps within 20% of their median: one timer's interval, with its jitter
SHOWN_GAPS = 6


def uneven_gaps(gaps_s: list[float], fmt: Callable[[float], str] = _fmt) -> str | None:
    """'0.476, 0.96, 1.884' when the gaps are not one interval (zero-window probes back off),
    else None: the caller says 'every X s'."""
    if not gaps_s:
        return None
    median = statistics.median(gaps_s)
    if all(abs(g - median) <= EVEN_GAPS * median for g in gaps_s):
        return None
    return ", ".join(fmt(g) for g in gaps_s[:SHOWN_GAPS]) + (", ..." if len(gaps_s) > SHOWN_GAPS else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _handshake_notes(cl: Flow, sv: Flow, s: ConnectionSummary) -> list[str]:
    if s.handshake == "missing":
        return ["no SYN captured: the connection was already open when the capture started"]
    if s.handshake == "partial":
        if cl.syn is not None and sv.syn_ack is None:
            if sv.rst is not None:
                return ["connection refused: the server answered the SYN with RST"]
            return ["the SYN was never answered: the handshake did not complete"]
        return ["handshake incomplete: the client never acknowledged the SYN+ACK"]
    return []


def _stray_notes(cl: Flow, sv: Flow, names: dict[int, Side]) -> list[str]:
    """The RST a SYN's sender sent for its peer's ACK of an earlier connection (`rst_stray`)."""
    notes: list[str] = []
    for f in (cl, sv):
        if f.rst_stray is None:
            continue
        who, peer = names[id(f)], names[id(f.rev)]
        notes.append(
            f"{peer} answered {who}'s SYN with an ACK for an earlier connection on this 4-tuple: it still "
            "held that one (established: a challenge ACK, RFC 5961, as when the other end rebooted; or "
            f"in TIME_WAIT); {who}'s RST (frame {f.rst_stray.p.frame}) answered that ACK, resetting the "
            f"earlier connection if it was established, not this one, and {who} sent its SYN again"
        )
    return notes


def link_reused(conns: list[Conn], summaries: list[ConnectionSummary]) -> None:
    """An earlier connection on a reused 4-tuple that a later one's stray RST reset (see
    `_stray_notes`): Wireshark puts that RST in the later tcp.stream, but it ends the earlier."""
    latest: dict[frozenset[tuple[str, int]], ConnectionSummary] = {}
    for c, s in zip(conns, summaries, strict=True):
        key = frozenset(((c.a.addr, c.a.port), (c.b.addr, c.b.port)))
        earlier = latest.get(key)
        latest[key] = s
        stray = next((f for f in (c.a, c.b) if f.rst_stray is not None), None)
        if earlier is None or stray is None or stray.rst_stray is None:
            continue
        if earlier.close not in ("none", "fin-unanswered"):
            continue  # it had ended already (a TIME_WAIT answered)
        rst = stray.rst_stray.p
        who: Side = "client" if _endpoint(stray) == earlier.client else "server"
        peer = "server" if who == "client" else "client"
        earlier.close, earlier.rst_from = "rst", who
        earlier.notes = [n for n in earlier.notes if not n.startswith("no FIN or RST")]
        earlier.notes.append(
            f"reset by {who}: a new SYN from {who} on this 4-tuple got a challenge ACK from {peer}, "
            f"which still had this connection established (RFC 5961: {who} had lost it, e.g. rebooted), "
            f"and {who}'s RST for it (frame {rst.frame}, counted in the next connection, as Wireshark "
            f"does) reset it: {peer}'s app gets ECONNRESET"
        )


def _endpoint(f: Flow) -> str:
    return f"[{f.addr}]:{f.port}" if ":" in f.addr else f"{f.addr}:{f.port}"


def _keepalive_notes(f: Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    who, peer = names[id(f)], names[id(f.rev)]
    text = f"{who} sent {_plural(f.ka, 'keep-alive probe')}"
    if f.ka_first is not None:
        text += f", the first after {_fmt(secs(f.ka_first.p.time_ns - f.ka_idle_ref))} s idle"
    # Probes that all went into a zero window are zero-window probes: they back off, and no
    # interval describes them. (Keep-alive gaps across an answer or new data are no interval
    # either, yet the median of the others is: those keep 'every'.)
    backoff = f.ka_zw == f.ka
    uneven = uneven_gaps([secs(g) for g in f.ka_gaps]) if backoff else None
    if uneven is not None:
        text += f", then at gaps of {uneven} s"
    elif f.ka_gaps:
        text += f", then every {_fmt(secs(statistics.median(f.ka_gaps)))} s"
    answered = s.keepalive_answered.get(names[id(f)])
    timing = s.keepalive
    # An RST after the last probe answers it too (no answer for the count: it ends the connection).
    reset = probe_reset(f) is not None
    if answered and s.keepalive_from == who and timing is not None and timing.run_probes:
        run = timing.run_probes
        run_uneven = uneven_gaps([secs(g) for g in f.ka_run_gaps]) if backoff else None
        if reset:
            text += f"; {peer} answered {_plural(answered, 'probe')}, then "
            text += f"not the next {run - 1}, and " if run > 1 else ""
            text += "the last with an RST"
        else:
            text += f"; {peer} answered {_plural(answered, 'probe')}, then not the last {run}"
        if run_uneven is not None:
            text += f" (at gaps of {run_uneven} s)"
        elif timing.interval_s is not None and not (reset and run == 1):
            text += f" (every {_fmt(timing.interval_s)} s)"
    elif answered:
        text += f"; {peer} answered {_plural(answered, 'probe')}"
    elif reset:
        text += f"; {peer} answered " + ("it with an RST" if f.ka == 1 else "only the last, with an RST")
    else:
        text += f"; {peer} never answered"
    notes = [text]
    if f.ka_zw:
        notes.append(
            f"{f.ka_zw} of {who}'s keep-alive-shaped probes went out while {peer}'s window was 0: "
            "they are zero-window probes (Linux sends those with the keep-alive shape)"
        )
    if f.rst is not None and pos(f.rst) > pos(f.ka_last) and not last_probe_answered(f):
        run = s.keepalive.run_probes if s.keepalive is not None and s.keepalive_from == who else f.ka
        notes.append(
            f"RST from {who} after {_plural(run, 'unanswered keep-alive probe')} (keepalive failure)"
        )
    return notes


def _close_notes(c: Conn, cl: Flow, sv: Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    notes: list[str] = []
    other = "server" if s.initiator == "client" else "client"
    if s.close == "fin":
        second = sv if s.initiator == "client" else cl
        if s.close_packets == 3:
            notes.append(f"{s.initiator} closed first; {other} merged its ACK into its FIN: 3-packet close")
        elif second.acked_fin_early:
            notes.append(
                f"{s.initiator} closed first; {other} acknowledged first, then sent its FIN: 4-packet close"
            )
        else:  # the second FIN does not acknowledge the first, nor did anything before it
            notes.append(
                f"the FINs crossed: {other} sent its FIN before it had {s.initiator}'s (its FIN does not "
                f"acknowledge it), a simultaneous close (both sides end in TIME_WAIT; "
                f"{s.initiator}'s FIN is only first in this capture): 4-packet close"
            )
        if s.rst_from is not None:
            notes.append(f"RST from {s.rst_from} after the FIN exchange (the close stays a FIN close)")
    elif s.close == "fin-unanswered":
        text = f"only {s.initiator} sent FIN; {other} never sent its own"
        closer = cl if s.initiator == "client" else sv
        if closer.fin is not None and acked(closer, closer.fin_end):
            # Measured (netns, tcp_fin_timeout=2): the close()d socket left ss 2 s after its FIN
            # was acknowledged, the shut-down one stayed; the packets were the same.
            text += (
                f"; {other} acknowledged the FIN: {s.initiator} waits in FIN_WAIT2 and {other} in "
                f"CLOSE_WAIT until its app closes. If {s.initiator}'s app close()d its socket (not only "
                "shutdown() for writing), Linux drops that orphan silently tcp_fin_timeout (60 s by "
                "default) after the FIN was acknowledged, and answers later data with an RST"
            )
        notes.append(text)
    elif s.close == "rst":
        rf = cl if s.rst_from == "client" else sv
        text = f"reset by {s.rst_from}"
        first_fin = (cl if s.initiator == "client" else sv).fin
        if s.initiator is not None and pos(rf.rst) > pos(first_fin):
            text += f" after {s.initiator}'s FIN, before the FIN exchange completed"
        elif s.initiator is not None:  # the RST lost on its way, or the FIN already in flight
            text += f"; {s.initiator}'s FIN came after the RST"
        notes.append(text)
        notes += _rst_cause(c, rf, names, s)
    elif not cl.retx and not sv.retx:
        notes.append("no FIN or RST: the connection was still open when the capture ended")
    for f in (cl, sv):
        if rst_disowned(f) and f.rst is not None:
            who, peer = names[id(f)], names[id(f.rev)]
            text = (
                f"the RST from {who} (frame {f.rst.p.frame}) did not end {who}'s side: {who} went on "
                f"sending after it, so this connection's socket did not send it (a middlebox, an "
                "injected RST, or an answer to a stray segment)"
            )
            peer_went_on = f.rev.lastack_t > f.rst.p.time_ns and f.rev.last_rst_t < f.rev.lastack_t
            if peer_went_on:
                text += (
                    f"; {peer} went on too: Linux takes an RST only at exactly the next expected "
                    "sequence number and answers one elsewhere in the window with a challenge ACK (RFC 5961)"
                )
            notes.append(text)
    total = cl.rst_count + sv.rst_count
    if total > 1:
        notes.append(f"{total} RSTs in all (client {cl.rst_count}, server {sv.rst_count})")
    return notes


def _stateless_rst_note(rf: Flow, names: dict[int, Side]) -> str:
    """Why a side answered with an RST of no socket. A listener whose last segment before it was
    its SYN-ACK never had a connection to lose: the handshake's ACK made no socket of it."""
    who, peer = names[id(rf)], names[id(rf.rev)]
    text = f"{STATELESS_RST} and takes its seq from {peer}'s ACK: "
    if rf.syn_ack is None or rf.pre_rst_t != rf.synack_last_t:
        text += f"{who} no longer had this connection (socket closed, or the host rebooted)"
        if rf.fin is None or pos(rf.fin) > pos(rf.rst):
            # Measured (netns, NAT in w, conntrack timeout 5 s, `ct state invalid reject with tcp
            # reset`): the router forged this very RST with the server's address after 8 s idle;
            # the server's own capture shows none, and it stayed ESTABLISHED.
            rst_t = rf.rst.p.time_ns if rf.rst is not None else 0
            since = (
                f"; {who} had sent nothing for {_fmt(secs(rst_t - rf.pre_rst_t))} s" if rf.pre_rst_t else ""
            )
            text += (
                f"; or, as {who} sent no FIN or RST before it here, a NAT or stateful firewall on the "
                f"path that forgot the flow (its conntrack entry expired while the connection was "
                f"idle{since}) answered with {who}'s address: nftables `reject with tcp reset`, or the "
                f"router's own stack when {who}'s address is the NAT's. Then the RST is not this "
                f"connection's: a capture on {who}'s side shows none (or {who} answering a new port the "
                f"NAT gave the flow), and {who} may still hold the connection"
            )
        return text
    # The same packets come from a handshake ACK lost on the way (measured: the netns
    # synack_retries cases) and from one the listener dropped: both causes are said.
    return text + (
        f"{who} had sent nothing but its SYN-ACK: it never had this connection (its listener made no "
        f"socket of the handshake, no app accepted it). Either {peer}'s handshake ACK never reached it "
        "(lost on the way), or the listener dropped it: a full accept queue (the app not calling "
        f"accept()), which with tcp_abort_on_overflow=1 answers {peer}'s ACK with this RST at once. "
        f"Otherwise the listener re-sends its SYN-ACK ({peer}, which believes it is connected, "
        "retransmits its data), drops the half-open request after tcp_synack_retries, and "
        f"{peer}'s next segment meets this RST. Or the listening socket was closed"
    )


# A peer's segment later than this after an RST (with no handshake RTT known) was sent after
# the RST reached it, not in flight when it was sent.
_CROSSING_NS = 200_000_000


def _rst_cause(c: Conn, rf: Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    """What the deciding RST's shape says of why `rf`'s side sent it, and whether its peer got it."""
    rst = rf.rst
    assert rst is not None
    who, peer = names[id(rf)], names[id(rf.rev)]
    fin = rf.fin if rf.fin is not None and pos(rf.fin) < pos(rst) else None
    went_on = _went_on_after(c, rf.rev, rst.p)
    notes: list[str] = []
    if rf.rst_stateless and s.handshake != "partial":
        if fin is not None and rf.rev.nextseq_t > fin.p.time_ns and not _only_fin_after(rf.rev, fin.p):
            # Linux's tcp_rcv_state_process resets new data reaching a socket with RCV_SHUTDOWN
            # (FIN_WAIT1/2): the orphan still exists, and its RST has the no-socket shape.
            before = _fmt(secs(rst.p.time_ns - fin.p.time_ns))
            text = (
                f"{STATELESS_RST} and takes its seq from {peer}'s ACK, after data {peer} sent once {who} "
                f"had sent its FIN (frame {fin.p.frame}, {before} s before the RST): Linux answers so while "
                "the socket still exists, when data reaches a socket its app closed (close(): an orphan, "
                "kept in FIN_WAIT2 up to tcp_fin_timeout, 60 s by default) or shut down for reading "
                "(TCPAbortOnData); and the same way with no socket left (the orphan gone, or the host "
                "rebooted)"
            )
            if not went_on:
                text += f"; {peer}'s app, which had {who}'s FIN, gets EPIPE"
            notes.append(text)
        else:
            notes.append(_stateless_rst_note(rf, names))
    elif (
        rst.p.flags & ACK
        and s.handshake == "complete"
        and rst.p.seq == rf.nextseq
        and not _keepalive_abort(rf)
    ):
        text = (
            f"the RST carries an ACK and {who}'s next sequence number: {who}'s own socket aborted the "
            "connection (Linux: close() with received data the app never read, instead of a FIN, "
            "TCPAbortOnClose; close() with SO_LINGER 0, TCPAbortOnData; or the socket destroyed, ss -K; "
            "a process that exits, kill -9 included, closes its sockets the same way)"
        )
        got = _bytes_received(rf.rev, rst.p)
        if got == 0:
            text += f"; {who} had received no data from {peer}, so no unread data: "
            text += "SO_LINGER 0 or a destroyed socket"
        elif got is not None:
            text += f"; {who} had received {_plural(got, 'byte')} from {peer} (the RST acknowledges them)"
        if not went_on and fin is None and (rf.rev.fin is None or pos(rf.rev.fin) > pos(rst)):
            text += f"; {peer}'s app gets ECONNRESET"
        notes.append(text)
    if went_on:
        text = (
            f"{peer} went on sending after {who}'s RST (frame {rst.p.frame}), "
            f"{_fmt(secs(rf.rev.lastack_t - rst.p.time_ns))} s more: it never got that RST (lost on the way)"
        )
        if rst.p.seq != rf.rev.lastack:
            text += (
                f", or dropped it: its seq is not the next {peer} expected (Linux takes an RST only at "
                "exactly that number, RFC 5961)"
            )
        later = next((r for r in rf.rsts if r.time_ns > rf.rev.lastack_t), None)
        if later is not None:
            text += f"; {who}'s RST of frame {later.frame} answered it later"
        notes.append(text)
    return notes


def _went_on_after(c: Conn, peer: Flow, rst: TcpPacket) -> bool:
    """Whether `peer` sent something other than an RST later than one round trip after `rst`:
    it had not taken the RST (a segment in flight when the RST left arrives within that time)."""
    margin = c.first_rtt or _CROSSING_NS
    return peer.lastack_t > rst.time_ns + margin and peer.last_rst_t < peer.lastack_t


def _only_fin_after(f: Flow, t: TcpPacket) -> bool:
    """Whether `f`'s latest advance of its sequence after packet `t` was a FIN with no data."""
    return f.fin is not None and f.fin.p.time_ns == f.nextseq_t and not f.fin.p.payload_len


def _keepalive_abort(f: Flow) -> bool:
    """Whether `f`'s RST came after keep-alive probes the peer left unanswered (its own note)."""
    return f.ka_last is not None and pos(f.rst) > pos(f.ka_last) and not last_probe_answered(f)


def _bytes_received(peer: Flow, rst: TcpPacket) -> int | None:
    """The bytes of data `rst` acknowledges from `peer` (its FIN not counted), if its ISN is known."""
    first = peer.syn or peer.syn_ack
    if first is None:
        return None
    got = (rst.ack - first.p.seq - 1) & M32
    if peer.fin is not None and covers(rst.ack, peer.fin_end):
        got -= 1
    return got if got < HALF else None


def _run_ending(f: Flow, run: Run, names: dict[int, Side]) -> str:
    """How a run of retransmissions ended: acknowledged, reset, or silence (an RTO abort)."""
    last = run.last
    if last is None:
        return ""
    if acked(f, run.end):
        return ", then the segment was acknowledged"
    peer = f.rev
    if pos(f.rst) > last.i:
        return ", then sent RST"
    if pos(peer.rst) > last.i:
        return f", answered by RST from {names[id(peer)]}"
    if f.lastack_t == last.p.time_ns:  # nothing more from this side
        # Only what the packets show: whether the kernel gave up or was still retrying when the
        # capture ended is the kernel model's to say (it knows the settings and the timer).
        if last.p.flags & SYN:
            return ", then sent no more SYNs"
        if last.p.flags & FIN:
            return ", then sent nothing more, its FIN never acknowledged"
        return ", then sent nothing more: no FIN, no RST"
    return ", never acknowledged"


def _no_original(f: Flow, run: Run, names: dict[int, Side]) -> str:
    """Why the gaps start at the first retransmission: its original send is not in this capture,
    or it is but the peer had acknowledged it (a spurious retransmission). Seen at the receiver,
    that copy may have been sent before the ACK could arrive: ACKs lost or late, or the segment
    itself delayed past the sender's timer (its gaps are then the arrivals', not the sends')."""
    if run.acked_before:
        peer = names[id(f.rev)]
        return (
            f" (in this capture {peer} had acknowledged the segment before it came again, so the gaps "
            f"start at the first retransmission: {peer}'s ACK had not reached {names[id(f)]} when it "
            "sent it again (the ACK lost or late, or the segment itself delayed past the timer), or "
            "the network duplicated it)"
        )
    return " (the original send was not captured: gaps start at the first retransmission)"
