"""The notes of a connection summary: short sentences a person can read next to the numbers."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from orchestrator.pcap.reader import FIN, SYN, TcpPacket
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side
from orchestrator.tcp.flows import (
    COPY_NS,
    CROSSING_NS,
    QUICK_NS,
    Conn,
    Flow,
    Run,
    acked,
    covers,
    last_probe_answered,
    pos,
    probe_copies,
    probe_gaps,
    probe_reset,
    rst_disowned,
    rst_taken,
    secs,
)
from orchestrator.tcp.rst_notes import rst_cause
from orchestrator.tcp.wording import fmt_s, plural

__all__ = ["describe", "link_reused"]


def describe(c: Conn, cl: Flow, sv: Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    """The notes for summary `s` of connection `c` (client flow `cl`, server flow `sv`)."""
    notes = _handshake_notes(cl, sv, s) + _stray_notes(cl, sv, names) + _copy_notes(cl, sv, names, s)
    run = c.best_run
    for f in (cl, sv):
        if not f.retx:
            continue
        copies = f.quick if s.copy_gap_s is not None else 0
        if copies:
            text = _copied_retransmissions(names[id(f)], f.retx, copies)
        else:
            text = f"{names[id(f)]} retransmitted {plural(f.retx, 'time')}"
        # Every one a copy: no re-send, the gaps would be the copies'.
        if copies < f.retx and run is not None and c.best_run_flow is f and s.backoff_gaps_s:
            if run.count < f.retx:  # other segments too: the gaps are one segment's, not all of them
                text += f"; its most-retransmitted segment {plural(run.count, 'time')}"
            text += " with gaps " + ", ".join(fmt_s(g) for g in s.backoff_gaps_s) + " s"
            if run.original is None:
                text += _no_original(f, run, names)
            text += _run_ending(f, run, names)
        notes.append(text)
    for f in (cl, sv):
        if f.ka:
            notes += _keepalive_notes(f, names, s)
    for f in (cl, sv):
        if f.zw:
            notes.append(f"{names[id(f)]} advertised a zero window {plural(f.zw, 'time')}")
    notes += _close_notes(c, cl, sv, names, s)
    return notes


def _copy_notes(cl: Flow, sv: Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    """A capture that holds the connection's packets twice: its SYN (SYN+ACK) came again sooner
    than any timer re-sends one, with nothing between (`segments._note_copy`)."""
    if s.copy_gap_s is None:
        return []
    f = cl if cl.syn_copy_ns >= 0 else sv
    what = "SYN" if f is cl else "SYN+ACK"
    return [
        f"the capture holds this connection's packets twice: {names[id(f)]}'s {what} came again "
        f"{_short(f.syn_copy_ns)} after it with nothing between, and no timer re-sends one within 1 s; "
        "so the captures of both ends were merged, two interfaces captured at once (or a router's "
        "-i any), or the network duplicated them. Wireshark counts each copy of a data segment as "
        "a retransmission, and so do the counts here"
    ]


def _copied_retransmissions(who: str, retx: int, copies: int) -> str:
    """What to say of the retransmissions in a capture with copies (`_copy_notes`). Measured
    (netns, 3% loss, both ends' captures merged): 2,387 counted, 2,275 within 1 ms, where the
    kernel re-sent 87; a fast retransmission on a veth came 0.2 ms after the original, and a
    copy's delay grew past 1 ms under load; in dumpcap's file of two interfaces, not in time
    order, a copy may follow a later send. So the split is no count of re-sends either way."""
    counted = f"Wireshark counts {plural(retx, 'retransmission')} from {who}"
    within = f"within {_short(QUICK_NS)} of their segment's previous send"
    one_end = f"{who}'s own capture alone counts what it re-sent"
    if copies == retx:
        return (
            f"{counted}, every one {within}: copies of packets captured twice, not re-sends (unless "
            f"fast retransmissions on a sub-millisecond path); {one_end}"
        )
    return (
        f"{counted}, {copies} of them {within}: copies of packets captured twice (or fast "
        f"retransmissions on a sub-millisecond path), so the count is not what {who} re-sent; {one_end}"
    )


def _short(ns: int) -> str:
    """A short time for a sentence: '20 us', '1 ms', '0.15 s'."""
    if ns < 1_000_000:
        return f"{ns / 1000:.0f} us"
    if ns < 100_000_000:
        return f"{ns / 1_000_000:.0f} ms"
    return f"{fmt_s(secs(ns))} s"


EVEN_GAPS = 0.2  # gaps within 20% of their median: one timer's interval, with its jitter
SHOWN_GAPS = 6


def uneven_gaps(gaps_s: list[float], fmt: Callable[[float], str] = fmt_s) -> str | None:
    """'0.476, 0.96, 1.884' when the gaps are not one interval (zero-window probes back off),
    else None: the caller says 'every X s'."""
    if not gaps_s:
        return None
    median = statistics.median(gaps_s)
    if all(abs(g - median) <= EVEN_GAPS * median for g in gaps_s):
        return None
    return ", ".join(fmt(g) for g in gaps_s[:SHOWN_GAPS]) + (", ..." if len(gaps_s) > SHOWN_GAPS else "")


def _handshake_notes(cl: Flow, sv: Flow, s: ConnectionSummary) -> list[str]:
    notes = _one_way_notes(s)
    if s.handshake == "missing":
        return [*notes, "no SYN captured: the connection was already open when the capture started"]
    if s.handshake == "complete" and (cl.syn is None or sv.syn_ack is None):
        who, what = ("client", "SYN+ACK") if sv.syn_ack is None else ("server", "ACK of its SYN+ACK")
        return [
            *notes,
            f"the {what} is not in the capture, yet {who} went on as only an established socket "
            "does (an ACK without SYN, data, a FIN or a probe): the handshake completed",
        ]
    if s.handshake == "partial":
        if cl.syn is not None and sv.syn_ack is None:
            if sv.rst is not None:
                return ["connection refused: the server answered the SYN with RST"]
            return ["the SYN was never answered: the handshake did not complete"]
        return ["handshake incomplete: the client never acknowledged the SYN+ACK"]
    return notes


def _one_way_notes(s: ConnectionSummary) -> list[str]:
    if s.unseen is None:
        return []
    seen = "client" if s.unseen == "server" else "server"
    return [
        f"only {seen}'s direction of this connection is in the capture, none of {s.unseen}'s "
        f"segments (asymmetric routing, or a tap on one direction): what {s.unseen} sent, and "
        f"which of {seen}'s segments it acknowledged or answered, cannot be told"
    ]


def _stray_notes(cl: Flow, sv: Flow, names: dict[int, Side]) -> list[str]:
    """The RST a SYN's sender sent for its peer's ACK of an earlier connection (`rst_stray`)."""
    notes: list[str] = []
    for f in (cl, sv):
        if f.rst_stray is None:
            continue
        who, peer = names[id(f)], names[id(f.rev)]
        notes.append(
            f"{peer} answered {who}'s SYN with an ACK for an earlier connection on this 4-tuple: it still "
            "held that one (established: a challenge ACK, RFC 5961, as when the other end rebooted; in "
            "LAST_ACK, its FIN never acknowledged: a challenge ACK too; or in TIME_WAIT); "
            f"{who}'s RST (frame {f.rst_stray.p.frame}) answered that ACK, resetting the earlier "
            f"connection if it was established or in LAST_ACK, not this one, and {who} sent its SYN again"
        )
    return notes


def link_reused(conns: list[Conn], summaries: list[ConnectionSummary]) -> None:
    """An earlier connection on a reused 4-tuple that a later one's stray RST reset (see
    `_stray_notes`): Wireshark puts that RST in the later tcp.stream, but it ends the earlier."""
    latest: dict[frozenset[tuple[str, int]], tuple[Conn, ConnectionSummary]] = {}
    for c, s in zip(conns, summaries, strict=True):
        key = frozenset(((c.a.addr, c.a.port), (c.b.addr, c.b.port)))
        found = latest.get(key)
        latest[key] = (c, s)
        stray = next((f for f in (c.a, c.b) if f.rst_stray is not None), None)
        if found is None or stray is None or stray.rst_stray is None:
            continue
        old, earlier = found
        rst = stray.rst_stray.p
        who: Side = "client" if _endpoint(stray) == earlier.client else "server"
        peer: Side = "server" if who == "client" else "client"
        answerer = old.a if _endpoint(old.a) != _endpoint(stray) else old.b
        if earlier.close not in ("none", "fin-unanswered"):
            if answerer.fin is not None and not acked(answerer, answerer.fin_end):
                _reset_in_last_ack(earlier, rst, who, peer)
            continue  # else it had ended already (a TIME_WAIT answered)
        earlier.close, earlier.rst_from = "rst", who
        earlier.notes = [n for n in earlier.notes if not n.startswith("no FIN or RST")]
        earlier.notes.append(
            f"reset by {who}: a new SYN from {who} on this 4-tuple got a challenge ACK from {peer}, "
            f"which still had this connection established (RFC 5961: {who} had lost it, e.g. rebooted), "
            f"and {who}'s RST for it (frame {rst.frame}, counted in the next connection, as Wireshark "
            f"does) reset it: {peer}'s app gets ECONNRESET"
        )


def _reset_in_last_ack(s: ConnectionSummary, rst: TcpPacket, who: Side, peer: Side) -> None:
    """Both sides sent FIN, `peer`'s was never acknowledged (LAST_ACK, or CLOSING), and `who`'s
    new SYN on the 4-tuple got its challenge ACK: `who`'s RST for that ACK ended the socket,
    not its retransmission timer. Measured (netns, 6.18): the server's LAST_ACK socket answered
    the SYN with an ACK (TCPSYNChallenge), the client's RST ended it, and the SYN sent again
    12 ms later was accepted."""
    s.rst_from, s.reset_later = who, FrameRef(rst.file, rst.frame, rst.time)
    s.notes.append(
        f"reset by {who}: {peer}'s FIN was never acknowledged, so its socket was still in LAST_ACK "
        f"(or CLOSING), retransmitting it, when a new SYN from {who} on this 4-tuple got its challenge "
        f"ACK (RFC 5961); {who}'s RST for that ACK (frame {rst.frame}, counted in the next connection, "
        "as Wireshark does) ended it, not its retransmission timer (an app that had closed the socket "
        "is told nothing; one that had only shut it down gets ECONNRESET)"
    )


def _endpoint(f: Flow) -> str:
    return f"[{f.addr}]:{f.port}" if ":" in f.addr else f"{f.addr}:{f.port}"


def _keepalive_notes(f: Flow, names: dict[int, Side], s: ConnectionSummary) -> list[str]:
    who, peer = names[id(f)], names[id(f.rev)]
    text = f"{who} sent {plural(f.ka, 'keep-alive probe')}"
    if f.ka_first is not None:
        text += f", the first after {fmt_s(secs(f.ka_first.p.time_ns - f.ka_idle_ref))} s idle"
    # Probes that all went into a zero window are zero-window probes: they back off, and no
    # interval describes them. (Keep-alive gaps across an answer or new data are no interval
    # either, yet the median of the others is: those keep 'every'.)
    backoff = f.ka_zw == f.ka
    uneven = uneven_gaps([secs(g) for g in f.ka_gaps]) if backoff else None
    gaps = probe_gaps(f, f.ka_gaps)
    if uneven is not None:
        text += f", then at gaps of {uneven} s"
    elif gaps:
        text += f", then every {fmt_s(secs(statistics.median(gaps)))} s"
    text += _copies_note(f)
    answered = s.keepalive_answered.get(names[id(f)])
    timing = s.keepalive
    # An RST after the last probe answers it too (no answer for the count: it ends the connection).
    reset = probe_reset(f) is not None
    if answered and s.keepalive_from == who and timing is not None and timing.run_probes:
        run = timing.run_probes
        run_uneven = uneven_gaps([secs(g) for g in f.ka_run_gaps]) if backoff else None
        copies = not reset and _run_is_copies(f, run)
        if copies:  # they came after the answer to the probe they copy: that one was answered
            kind = "a copy" if run == 1 else "copies"
            text += (
                f"; {peer} answered {plural(answered, 'probe')}, not the last {run}: {kind} of the one before"
            )
        elif reset:
            text += f"; {peer} answered {plural(answered, 'probe')}, then "
            text += f"not the next {run - 1}, and " if run > 1 else ""
            text += "the last with an RST"
        else:
            text += f"; {peer} answered {plural(answered, 'probe')}, then not the last {run}"
        if run_uneven is not None:
            text += f" (at gaps of {run_uneven} s)"
        elif timing.interval_s is not None and not (reset and run == 1) and not copies:
            text += f" (every {fmt_s(timing.interval_s)} s)"
    elif answered:
        text += f"; {peer} answered {plural(answered, 'probe')}"
    elif reset:
        text += f"; {peer} answered " + ("it with an RST" if f.ka == 1 else "only the last, with an RST")
    elif s.unseen == peer:
        text += f"; none of {peer}'s segments are in the capture: whether it answered cannot be told"
    else:
        text += f"; {peer} never answered"
    notes = [text]
    if f.ka_zw:
        notes.append(
            f"{f.ka_zw} of {who}'s keep-alive-shaped probes went out while {peer}'s window was 0: "
            "they are zero-window probes (Linux sends those with the keep-alive shape)"
        )
    if f.rst is not None and pos(f.rst) > pos(f.ka_last) and s.unseen == peer:
        notes.append(
            f"RST from {who} after its keep-alive probes: a keepalive failure if {peer} answered "
            "none of the last"
        )
    elif f.rst is not None and pos(f.rst) > pos(f.ka_last) and not last_probe_answered(f):
        run = s.keepalive.run_probes if s.keepalive is not None and s.keepalive_from == who else f.ka
        notes.append(f"RST from {who} after {plural(run, 'unanswered keep-alive probe')} (keepalive failure)")
    return notes


def _run_is_copies(f: Flow, run: int) -> bool:
    """Whether the last `run` probes are all copies (`probe_copies`), each of the one before."""
    complete = len(f.ka_gaps) == f.ka - 1  # not capped: its tail is the latest probes'
    return not f.ka_zw and complete and all(g < COPY_NS for g in f.ka_gaps[-run:])


def _copies_note(f: Flow) -> str:
    """The network's copies of probes (seen where the capture is past the duplicating hop).
    Measured (netns, every packet duplicated, keep-alive 1 s / 1 s / 3): the server's capture held
    each probe twice, 31-85 us apart; it answered the first, and its kernel sent no answer to the
    copy (TCPACKSkippedSeq 2: Linux's out-of-window ACKs are rate-limited, tcp_invalid_ratelimit)."""
    copies = probe_copies(f)
    if not copies:
        return ""
    within = max(copies)
    near = f"{within / 1000:.0f} us" if within < 1_000_000 else f"{fmt_s(secs(within))} s"
    one = len(copies) == 1
    return (
        f" ({'1 is a copy' if one else f'{len(copies)} are copies'} of the probe before, within {near} "
        f"of it: no keep-alive timer sends so soon (its interval is 1 s at least), the network duplicated "
        f"{'it' if one else 'them'}; Linux does not answer a copy so soon after its answer to the probe, "
        "its ACKs to out-of-window segments being rate-limited: tcp_invalid_ratelimit, 500 ms)"
    )


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
        if s.unseen == other:
            text = f"{s.initiator} sent FIN; none of {other}'s segments are in the capture"
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
        notes += rst_cause(c, rf, names, s)
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
            if rst_taken(f):
                text = (
                    f"the RST from {who} (frame {f.rst.p.frame}) was not {who}'s socket's: {who} went on "
                    f"sending after it (a firewall's REJECT in {who}'s namespace, a middlebox or an injected "
                    f"RST); {peer} took it: it sent nothing after it but RSTs of no socket, answering "
                    f"{who}'s segments"
                )
                answer = f.rev.rst
                if answer is not None and f.lastack_t > answer.p.time_ns + (c.first_rtt or CROSSING_NS):
                    text += (
                        f", which {who} never took: it went on sending (its socket still open: ETIMEDOUT at "
                        "its RTO budget, if nothing else reaches it)"
                    )
            elif peer_went_on:
                text += (
                    f"; {peer} went on too: Linux takes an RST only at exactly the next expected "
                    "sequence number and answers one elsewhere in the window with a challenge ACK (RFC 5961)"
                )
            notes.append(text)
    total = cl.rst_count + sv.rst_count
    if total > 1:
        notes.append(f"{total} RSTs in all (client {cl.rst_count}, server {sv.rst_count})")
    return notes


def _run_ending(f: Flow, run: Run, names: dict[int, Side]) -> str:
    """How a run of retransmissions ended: acknowledged, reset, or silence (an RTO abort)."""
    last = run.last
    if last is None:
        return ""
    peer = f.rev
    if run.acked_before:  # acknowledged before them all: say only what came after them
        if _acked_after(peer, run.end, last.p.time_ns):
            return ", then the segment was acknowledged again"
        if peer.last_rst_t > last.p.time_ns:
            return f", the last answered by RST from {names[id(peer)]}"
    elif acked(f, run.end):
        return ", then the segment was acknowledged"
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
    return ", not acknowledged again" if run.acked_before else ", never acknowledged"


def _acked_after(peer: Flow, end: int, t_ns: int) -> bool:
    """Whether the peer's latest segment, sent after `t_ns` and not an RST (whose ACK field may be
    unset), acknowledged up to `end`."""
    return peer.lastack_t > t_ns and peer.last_rst_t != peer.lastack_t and covers(peer.lastack, end)


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
