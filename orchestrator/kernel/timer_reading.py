"""What the captured sends of the oldest unacknowledged segment say of the sender's
retransmission timer: which sends are the head's, whether its first re-send was a tail-loss
probe, the RTO it was armed with, the ceiling its gaps level at, sends failing on the host."""

from __future__ import annotations

import itertools
import math

from orchestrator.kernel.predict import WHEEL_SLACK
from orchestrator.kernel.timers import TCP_RTO_MAX, TCP_RTO_MIN, TCP_THIN_LINEAR_RETRIES
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side

__all__ = [
    "LOCAL_RETRY",
    "TCP_TIMEOUT_FALLBACK",
    "after_new_data",
    "ceiling_ms",
    "failing_locally",
    "fallback_cap",
    "fallback_note",
    "first_is_tail_loss_probe",
    "head_sends",
    "last_level",
    "level_run",
    "linear_timeouts",
    "plateau",
    "rto_at",
]

LOCAL_RETRY = 0.5  # s, TCP_RESOURCE_PROBE_INTERVAL
# s: Linux's RTO after a handshake whose SYN or SYN-ACK was re-sent, until an RTT sample (RFC
# 6298 5.7); it only falls from there, as samples of a fast path come in.
TCP_TIMEOUT_FALLBACK = 3.0


def head_sends(conn: ConnectionSummary, side: Side, original: FrameRef) -> list[FrameRef]:
    """Every captured send of the oldest unacknowledged segment, the original first: the one
    the timer follows, whether or not another segment was retransmitted more often."""
    if conn.oldest_unacked_from == side and conn.head_frames[:1] == [original]:
        return list(conn.head_frames)
    if conn.backoff_from == side and conn.backoff_frames[:1] == [original]:
        return list(conn.backoff_frames)  # a summary made without head_frames
    return [original]


def first_is_tail_loss_probe(conn: ConnectionSummary, sends: list[FrameRef], captured_original: bool) -> bool:
    """Whether the head's first re-send was a tail-loss probe, from the packets: a probe
    re-sends the last segment only when no new data could go instead, so it is one only if
    nothing new was sent between the original and it (the head was also the tail), and the
    timer's retransmission then came one RTO after it, not doubled."""
    if not captured_original or len(sends) < 3 or after_new_data(conn, sends) is not False:
        return False
    counted = _probe_by_linear_count(sends[1:])
    if counted is not None:
        return counted
    gaps = [b.time - a.time for a, b in itertools.pairwise(sends[:3])]
    return gaps[1] < 1.5 * gaps[0]


def _probe_by_linear_count(resends: list[FrameRef]) -> bool | None:
    """A thin stream's linear timeouts keep TCP_THIN_LINEAR_RETRIES gaps level after the timer's
    first retransmission, then double; a probe before it adds one more level gap (it re-sends
    the head about one RTO after the original where the RTT is short). So where the capture
    shows the turn, the level gaps from the first re-send count it: one more than the kernel
    keeps, a probe; as many, the timer's. Measured on 6.18 (one write, then a cut): 7 level
    gaps with tcp_early_retrans=3 (TCPLossProbes 1), 6 with 0 (none). None where they do not
    show it."""
    gaps = [b.time - a.time for a, b in itertools.pairwise(resends)]
    run = level_run(resends)
    if not run or run >= len(gaps) or not 1.6 <= gaps[run] / gaps[0] <= 2.6:
        return None
    if run == TCP_THIN_LINEAR_RETRIES + 1:
        return True
    return False if run == TCP_THIN_LINEAR_RETRIES else None


def after_new_data(conn: ConnectionSummary, sends: list[FrameRef]) -> bool | None:
    """Whether new data went out between the head's original send and its first retransmission."""
    if conn.head_frames[:1] == sends[:1]:
        return conn.head_after_new_data
    return conn.backoff_after_new_data if conn.backoff_frames[:1] == sends[:1] else None


def fallback_note(conn: ConnectionSummary, side: Side, sends: list[FrameRef], rto: float) -> str | None:
    """Where the fallback RTO, not the gap from the original send, set the timer: say so."""
    cap = fallback_cap(conn, side, sends)
    retx = [f for f in sends[1:] if f.time > sends[0].time]
    if cap is None or len(retx) != 1 or rto != 2 * cap:
        return None
    return (
        f"the first retransmission's timer ran on the {cap:g} s fallback RTO (RFC 6298 5.7): {side} "
        f"re-sent its {'SYN' if side == 'client' else 'SYN-ACK'} in the handshake, and Linux lowers "
        f"that RTO only as RTT samples come; the {retx[0].time - sends[0].time:.3f} s from the "
        "original send to it hold new sends (a loss probe re-arms the timer), so the timer is read "
        f"as {cap:g} s, doubled to {rto:g} s after it"
    )


def fallback_cap(conn: ConnectionSummary, side: Side, sends: list[FrameRef]) -> float | None:
    """The most the RTO before the first timeout can be when the gap from the original send to
    the first retransmission cannot tell it: new data went out between (a loss probe carrying it
    re-arms the timer, and a send while the timer is due turns it into a probe timer), and the
    side re-sent its SYN or SYN-ACK, so it started on the fallback RTO (measured on 6.18, no
    timestamps: 3 s, doubled to 6 s, where the gap from the original was 5.02 s)."""
    if conn.handshake_retransmitted.get(side) and after_new_data(conn, sends):
        return TCP_TIMEOUT_FALLBACK
    return None


def rto_at(timer: list[FrameRef], sends: list[FrameRef], cap: float | None = None, level: int = 0) -> float:
    """The RTO the timer was armed with at the first timer retransmission. The timer wheel
    only ever fires late (by up to 1/8), so each captured gap overstates its RTO: the least of
    gap_k / 2^k over the timer's gaps is the best estimate, or the least of the first `level`
    gaps where they stay level (a thin stream's linear timeouts). With one timer
    retransmission, twice the gap from the send before it, that gap at most `cap`."""
    gaps = [b.time - a.time for a, b in itertools.pairwise(timer)]
    if level > 1 and len(gaps) >= 2 and min(gaps[:level]) > 0:
        return min(gaps[:level])
    if gaps and gaps[0] > 0:
        chain = [gaps[0]]  # the leading gaps that double (sends failing locally do not)
        for a, b in itertools.pairwise(gaps):
            if not 1.6 <= b / a <= 2.6:
                break
            chain.append(b)
        return min(g / float(2**k) for k, g in enumerate(chain))
    before = [f for f in sends if f.time < timer[0].time]
    if not before:
        return 2 * TCP_RTO_MIN
    gap = timer[0].time - before[-1].time
    return 2 * (gap if cap is None else min(gap, cap))


def level_run(timer: list[FrameRef]) -> int:
    """How many of the timer's leading gaps stay at the first one's level (the wheel's lateness
    within), where doubling would have made the second twice the first: 0 for fewer than 2."""
    gaps = [b.time - a.time for a, b in itertools.pairwise(timer)]
    if len(gaps) < 2 or gaps[0] <= 0:
        return 0
    n = 1
    while n < len(gaps) and 1 / (1 + _LEVEL) <= gaps[n] / gaps[0] <= 1 + _LEVEL:
        n += 1
    return n if n >= 2 else 0


# Two timer gaps this close (a ratio within 1.3) are one level, not a doubling (2): the wheel
# fires each up to 1/8 late.
_LEVEL = 0.3


def linear_timeouts(timer: list[FrameRef], thin_linear: int) -> int:
    """How many gaps from the stamp the model keeps level (a thin stream's linear timeouts,
    `timers.rto_abort_from_stamp`'s `linear`): as many as the gaps show before they double;
    the kernel's TCP_THIN_LINEAR_RETRIES where they are level to the capture's end, or where
    the setting is on and too few gaps show; 0 where they double from the first, or where more
    stay level than the kernel's limit (not this timer: `level_run`'s caller says so)."""
    run = level_run(timer)
    gaps = len(timer) - 1
    if run > TCP_THIN_LINEAR_RETRIES:
        return 0
    if run and run < gaps:
        return run  # level, then doubling: the capture shows where it turned
    if run or (thin_linear and gaps < 2):
        return TCP_THIN_LINEAR_RETRIES
    return 0


def plateau(gaps: list[float]) -> float | None:
    """The ceiling the gaps reached, if they doubled and then stayed level below 120 s: the last
    two gaps within 5% of each other, at least 1 s (the least ceiling the kernel takes; sends
    failing locally repeat at 0.5 s), and an earlier gap under two thirds of them."""
    level = last_level(gaps)
    if len(gaps) < 3 or level is None or not 1.0 <= level < TCP_RTO_MAX * 0.95:
        return None
    return level if any(g < level / 1.5 for g in gaps[:-2]) else None


def last_level(gaps: list[float]) -> float | None:
    """The gap the last two stay at (within 5% of each other), if they do."""
    if len(gaps) < 2 or min(gaps[-2:]) <= 0:
        return None
    a, b = gaps[-2:]
    return min(a, b) if abs(a - b) <= 0.05 * min(a, b) else None


def ceiling_ms(ceiling: float) -> int:
    """The ceiling a plateau of gaps this far apart stands for, in ms: the wheel fires late by
    up to 1/8, so the setting is at most the gap; whole seconds when one is in reach."""
    low = ceiling / (1 + WHEEL_SLACK)
    whole = math.floor(ceiling)
    return whole * 1000 if whole >= low else round(ceiling * 1000)


def failing_locally(timer: list[FrameRef]) -> bool:
    """Two or more of the last gaps 500 ms apart without doubling: the sends fail on the host
    itself, and Linux retries them every TCP_RESOURCE_PROBE_INTERVAL."""
    gaps = [b.time - a.time for a, b in itertools.pairwise(timer)]
    return sum(1 for g in gaps[-3:] if abs(g - LOCAL_RETRY) <= LOCAL_RETRY * 0.1) >= 2
