"""Why an RST was sent, and whether its peer got it: the notes on the RST that decided a close,
from its shape (ACK flag, sequence number) and what came around it."""

from __future__ import annotations

from orchestrator.pcap.reader import ACK, TcpPacket
from orchestrator.tcp.connection import ConnectionSummary, Side
from orchestrator.tcp.flows import (
    HALF,
    M32,
    Conn,
    Flow,
    covers,
    last_probe_answered,
    pos,
    rst_disowned,
    secs,
    went_on_after,
)
from orchestrator.tcp.wording import fmt_s, plural

__all__ = ["STATELESS_RST", "rst_cause"]

# How the note on an RST sent without a socket begins (a NAT-aware verdict retells it).
STATELESS_RST = "the RST has no ACK flag"
EVEN = 0.2  # an RST within 20% of the probes' interval after the last: the timer's next run


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
            # the server's own capture shows none, and it stayed ESTABLISHED. And (netns
            # reject_own_server) the server's own `reject with tcp reset` on its input: the same
            # shape, the RST leaving the server in its own capture, its socket still ESTABLISHED.
            # Which capture this is the packets do not say: each cause says what its host's shows.
            rst_t = rf.rst.p.time_ns if rf.rst is not None else 0
            since = (
                f"; {who} had sent nothing for {fmt_s(secs(rst_t - rf.pre_rst_t))} s" if rf.pre_rst_t else ""
            )
            text += (
                f"; or, as {who} sent no FIN or RST before it here, not {who}'s socket but a firewall "
                f"answering in its name, {who}'s socket untouched (it may still hold the connection): "
                f"{who}'s own (a REJECT with tcp-reset in {who}'s namespace, iptables or nftables: the "
                f"RST leaves {who}, in {who}'s own capture too), or a NAT or stateful firewall on the path "
                f"that forgot the flow (its conntrack entry expired while the connection was idle{since}) "
                f"answering with {who}'s address: nftables `reject with tcp reset`, or the router's own "
                f"stack when {who}'s address is the NAT's; such an RST is not in a capture taken on "
                f"{who}'s host (which may show {who} answering a new port the NAT gave the flow)"
            )
        return text
    lost = _lost_after_handshake(rf)
    if lost is not None:
        return text + (
            f"{who} had sent nothing but its SYN-ACK, once, {fmt_s(lost)} s before the RST: a listener "
            "still holding the half-open request re-sends its SYN-ACK after 1 s (unless "
            f"tcp_synack_retries is 0), so {who}'s listener had made a connection of the handshake, "
            f"and no socket of it sent this RST: either {who} lost it without a word (its host "
            "rebooted: a power cut lets no FIN or RST out, and the new kernel, at the same address, "
            f"has no socket for it) or a middlebox answered in {who}'s name (a NAT or stateful "
            "firewall that forgot the idle flow, or a load balancer's reset on idle), "
            f"{who}'s socket untouched: such an RST is not in a capture taken on {who}'s host"
        )
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


# A listener re-sends its SYN-ACK when its 1 s timer fires (TCP_TIMEOUT_INIT; the wheel up to
# 1/8 late): measured 1.007 to 1.027 s in the listener_overflow captures.
SYNACK_RESEND_S = 1.25


def _lost_after_handshake(rf: Flow) -> float | None:
    """The time from `rf`'s only SYN-ACK to its RST, when longer than a listener holding the
    request would have waited before sending it again: then the side had the connection (its
    host rebooted, or a middlebox sent the RST). None otherwise. Measured: an idle connection's
    keep-alive probe to a server power-cycled with the same address drew this RST 2.0 s after
    the SYN-ACK, and a load balancer's forged one (lb_idle_reset) came 10 s after it."""
    if rf.syn_ack is None or rf.rst is None or rf.synack_last_t != rf.syn_ack.p.time_ns:
        return None
    gap = secs(rf.rst.p.time_ns - rf.syn_ack.p.time_ns)
    return gap if gap > SYNACK_RESEND_S else None


def rst_cause(c: Conn, rf: Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    """What the deciding RST's shape says of why `rf`'s side sent it, and whether its peer got it."""
    rst = rf.rst
    assert rst is not None
    if rst_disowned(rf):
        return []  # not its socket's, though it reset the peer: `notes` says so
    who, peer = names[id(rf)], names[id(rf.rev)]
    fin = rf.fin if rf.fin is not None and pos(rf.fin) < pos(rst) else None
    went_on = went_on_after(c, rf.rev, rst.p)
    notes: list[str] = []
    probes = _unlabelled_probes(c, rf, s)
    if probes:
        return [_unlabelled_probes_note(c, rf, probes, who, peer)]
    if rf.rst_stateless and s.handshake != "partial":
        if fin is not None and rf.rev.nextseq_t > fin.p.time_ns and not _only_fin_after(rf.rev, fin.p):
            # Linux's tcp_rcv_state_process resets new data reaching a socket with RCV_SHUTDOWN
            # (FIN_WAIT1/2): the orphan still exists, and its RST has the no-socket shape.
            before = fmt_s(secs(rst.p.time_ns - fin.p.time_ns))
            text = (
                f"{STATELESS_RST} and takes its seq from {peer}'s ACK, after data {peer} sent once {who} "
                f"had sent its FIN (frame {fin.p.frame}, {before} s before the RST): Linux answers so while "
                "the socket still exists, when data reaches a socket its app closed (close(): an orphan, "
                "kept in FIN_WAIT2 up to tcp_fin_timeout, 60 s by default) or shut down for reading "
                "(TCPAbortOnData); and the same way with no socket left (the orphan gone, or the host "
                "rebooted)"
            )
            if not went_on:
                # Measured (redis-cli against a restarted redis-server): its recv() after the RST
                # returned 0; tcp_recvmsg reports the FIN (SOCK_DONE) before the socket's error.
                text += (
                    f"; {peer}'s app, which had {who}'s FIN, gets EPIPE from its next write (a read "
                    "still returns end of file, the FIN having come first)"
                )
            notes.append(text)
        else:
            notes.append(_stateless_rst_note(rf, names))
    elif (
        rst.p.flags & ACK
        and s.handshake == "complete"
        and rst.p.seq == rf.nextseq
        and not _keepalive_abort(rf)
    ):
        lost = _answers_lost(rf)
        if lost is not None:
            # Measured (s04 of review13: the server's outbound path blackholed, the client idle
            # with keep-alive 2 s / 1 s / 3): the server's capture shows every probe answered,
            # then the client's RST one interval after the last: its keep-alive abort.
            text = (
                f"the RST carries an ACK and {who}'s next sequence number, and came {fmt_s(lost)} s "
                f"after {who}'s last keep-alive probe (the probes' own interval), {who} sending nothing "
                f"else since: {who}'s keep-alive abort (its app gets ETIMEDOUT), though this capture "
                f"shows {peer} answering that probe: {peer}'s answers never reached {who} (lost on the "
                f"way, where a capture on {who}'s side shows them missing); otherwise {who}'s own socket "
                "aborted the connection (close() with unread data or SO_LINGER 0, or ss -K)"
            )
            if not went_on and fin is None and (rf.rev.fin is None or pos(rf.rev.fin) > pos(rst)):
                text += f"; {peer}'s app gets ECONNRESET"
            notes.append(text)
            return notes + _went_on_note(c, rf, rst.p, who, peer) if went_on else notes
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
            # Over the whole connection: how much of it the app had read, the packets cannot say.
            text += (
                f"; {who} had received {plural(got, 'byte')} from {peer} over the connection (the RST "
                "acknowledges them)"
            )
            if rf.rev.nextseq_t <= rst.p.time_ns:
                last = fmt_s(secs(rst.p.time_ns - rf.rev.nextseq_t))
                text += (
                    f", the last {last} s before the RST; whether its app had read them, the packets "
                    "cannot tell"
                )
        if not went_on and fin is None and (rf.rev.fin is None or pos(rf.rev.fin) > pos(rst)):
            text += f"; {peer}'s app gets ECONNRESET"
        notes.append(text)
    if went_on:
        notes += _went_on_note(c, rf, rst.p, who, peer)
    return notes


def _went_on_note(c: Conn, rf: Flow, rst: TcpPacket, who: str, peer: str) -> list[str]:
    """The note on a peer that went on sending after `rst`: it never took it."""
    text = (
        f"{peer} went on sending after {who}'s RST (frame {rst.frame}), "
        f"{fmt_s(secs(rf.rev.lastack_t - rst.time_ns))} s more: it never got that RST (lost on the way)"
    )
    if rst.seq != rf.rev.lastack:
        text += (
            f", or dropped it: its seq is not the next {peer} expected (Linux takes an RST only at "
            "exactly that number, RFC 5961)"
        )
    later = next((r for r in rf.rsts if r.time_ns > rf.rev.lastack_t), None)
    if later is not None:
        text += f"; {who}'s RST of frame {later.frame} answered it later"
    return [text]


# How far the RST may be from one probe interval after the last probe and still be the
# keep-alive timer's: the wheel fires up to 1/8 late, never early; a little margin either way.
_KA_EARLY, _KA_LATE = 0.9, 1.25


def _answers_lost(f: Flow) -> float | None:
    """The RST's delay after `f`'s last keep-alive probe, when the RST looks like `f`'s keep-alive
    abort although this capture shows the probe answered (the answers lost after the capture
    point): `f` sent nothing but probes since its last real segment, and the RST came one probe
    interval (the median gap between its probes) after the last. None otherwise."""
    last, rst = f.ka_last, f.rst
    if last is None or rst is None or not f.ka_gaps or pos(rst) < pos(last):
        return None
    if f.pre_rst_t > last.p.time_ns or not last_probe_answered(f):
        return None
    interval = sorted(f.ka_gaps)[len(f.ka_gaps) // 2]
    delay = rst.p.time_ns - last.p.time_ns
    if not _KA_EARLY * interval <= delay <= _KA_LATE * interval:
        return None
    return secs(delay)


def _unlabelled_probes(c: Conn, rf: Flow, s: ConnectionSummary) -> int:
    """How many keep-alive probes came before `rf`'s RST that no one could label (0: none).
    A capture begun after the connection's last data (no handshake, no data at all, the peer
    silent) holds the prober's bare ACKs, then its RST: Wireshark labels a probe only by the
    segment before it, which is not there. Their seq tells: the first segment's is one below
    the RST's (and without data or FIN the seq never moved), and Linux sends its probes at
    snd_una - 1, its abort's RST (with ACK) at snd_nxt, a plain ACK at snd_nxt. Measured (netns,
    keep-alive 2 s / 1 s / 3, tcpdump started after the last data): 3 bare ACKs 1.02 s apart,
    the RST 1.02 s after the last, ETIMEDOUT."""
    rst = rf.rst
    assert rst is not None
    alone = c.first.src == rf.addr and c.first.sport == rf.port and not rf.rev.lastack_t
    if s.handshake != "missing" or c.last_activity is not None or not alone or rf.fin is not None:
        return 0
    if not rst.p.flags & ACK or c.first.seq != (rst.p.seq - 1) & M32 or not rf.pre_rst_t:
        return 0
    return c.packets - rf.rst_count


def _unlabelled_probes_note(c: Conn, rf: Flow, probes: int, who: str, peer: str) -> str:
    rst = rf.rst
    assert rst is not None
    text = (
        f"{who}'s {plural(probes, 'segment')} before its RST "
        f"{'is a bare ACK' if probes == 1 else 'are bare ACKs'} one below the RST's sequence number, "
        f"and {peer} sent nothing: keep-alive probes (Linux sends a probe at snd_una - 1 and the RST "
        "of its keep-alive abort at snd_nxt; a plain ACK carries snd_nxt), which Wireshark, and so "
        "the counts here, cannot label, the capture having begun after the connection's last data"
    )
    after = secs(rst.p.time_ns - rf.pre_rst_t)
    every = secs((rf.pre_rst_t - c.first.time_ns) / (probes - 1)) if probes > 1 else None
    if every is not None:
        text += f"; they came every {fmt_s(every)} s"
    if every is not None and abs(after - every) <= EVEN * every:
        # The abort comes when the timer would send the next probe: one interval after the last.
        return (
            f"{text}; the RST came {fmt_s(after)} s after the last, one interval: {who}'s keep-alive "
            f"abort (its app gets ETIMEDOUT), not its app's reset; {peer}'s app is told nothing "
            "unless the RST reaches it (ECONNRESET)"
        )
    if every is not None:
        return (
            f"{text}; the RST came {fmt_s(after)} s after the last, not one interval on: not the "
            f"keep-alive timer's abort but {who}'s own socket reset while it probed (close() with "
            "SO_LINGER 0, or ss -K)"
        )
    return (
        f"{text}; the RST came {fmt_s(after)} s after it: {who}'s keep-alive abort if that is one "
        "keep-alive interval, else its own socket's reset while it probed (close() with SO_LINGER 0)"
    )


def _only_fin_after(f: Flow, t: TcpPacket) -> bool:
    """Whether `f`'s latest advance of its sequence after packet `t` was a FIN with no data."""
    return f.fin is not None and f.fin.p.time_ns == f.nextseq_t and not f.fin.p.payload_len


def _keepalive_abort(f: Flow) -> bool:
    """Whether `f`'s RST came after keep-alive probes the peer left unanswered (its own note)."""
    return f.ka_last is not None and pos(f.rst) > pos(f.ka_last) and not last_probe_answered(f)


def _bytes_received(peer: Flow, rst: TcpPacket) -> int | None:
    """The bytes of data `rst` acknowledges from `peer` (its FIN not counted), if its ISN is known:
    counted in the sequence space unwrapped (`Flow.seq_wraps`), so past 4 GiB too. The RST's
    ACK is read against the peer's next sequence number at the capture's end, at most 2 GiB
    behind it (or ahead, where the capture missed what it acknowledges)."""
    first = peer.syn or peer.syn_ack
    if first is None:
        return None
    sent = peer.nextseq + (peer.seq_wraps << 32) - ((first.p.seq + 1) & M32)
    behind = (peer.nextseq - rst.ack) & M32
    got = sent - (behind if behind < HALF else behind - (M32 + 1))
    if peer.fin is not None and covers(rst.ack, peer.fin_end):
        got -= 1
    return got if got >= 0 else None
