"""The retransmission timer under ICMP errors that undo a backoff step (RFC 6069), replayed.

Linux (tcp_ld_RTO_revert, from tcp_v4_err for ICMPv4 net or host unreachable, from tcp_v6_err
for ICMPv6 no route) undoes one step when the error quotes snd_una (the oldest unacknowledged
segment), the timer has retransmitted (icsk_retransmits > 0) and backed off (icsk_backoff > 0),
and the socket is not owned by the user (the packets cannot show that; rare). Then:
icsk_backoff--, the RTO is the base one (from srtt, else TCP_TIMEOUT_INIT) backed off again,
and remaining = RTO - (now - the head's last send): the timer is re-armed for `remaining` (not
clamped to TCP_USER_TIMEOUT: only tcp_retransmit_timer clamps), or, when it is spent, the
timer's handler runs at once (tcp_retransmit_timer: the abort check, else a retransmission).
The abort is decided only in that handler (tcp_write_timeout), at the first run past the budget.

Measured on 6.18 (tests/unit/kernel/recorded/icmp_timer): every third send rejected, tcp_retries2
5: the app's EHOSTUNREACH 17.304 s after the first retransmission, where the same timer without
the errors ends at 12.65 s (reverts move the fires sooner, so the first past the budget may come
sooner or, as here, one RTO later); TCP_USER_TIMEOUT 3000 and an error answering the
retransmission 2.916 s after the first: the abort 4.548 s after it, past the user timeout (the
re-armed timer is not clamped).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.pcap.icmp import IcmpError
from orchestrator.tcp.connection import FrameRef

__all__ = ["CLOCKED_OUT", "Replay", "base_rto", "captured_gaps", "next_expiry", "replay"]

# s: a retransmission this soon after an error was clocked out by it (remaining <= 0), not by
# the timer: measured 14 to 20 us after the error; the timer's fires come an RTO (>= 200 ms) apart.
CLOCKED_OUT = 0.005
_US = 1_000_000


def _us(seconds: float) -> int:
    return round(seconds * _US)


@dataclass(slots=True)
class Replay:
    """The timer's run from the first timer retransmission, with the errors at their times.
    Times in seconds after the stamp (the budget's start)."""

    abort: float  # the handler's first run at or past the budget
    base: float  # the RTO before backoff the run is on
    fires: list[float] = field(default_factory=list)  # every run of the handler, one past the abort
    at_errors: list[float] = field(default_factory=list)  # of those, the runs an error clocked out
    reverted: list[IcmpError] = field(default_factory=list)  # the errors that undid a step
    clocked_out: list[IcmpError] = field(default_factory=list)  # of those, the ones that ran it at once
    idle: list[IcmpError] = field(default_factory=list)  # head errors with no backoff left to undo


def captured_gaps(
    armed: Sequence[FrameRef], errors: Sequence[IcmpError], backoff: int, rto_max: float
) -> tuple[list[tuple[int, float]], int]:
    """The captured gaps that tell the timer's RTO, each with the backoff count it was armed
    with (the errors replayed on it: each undoes a step while one is left), and the count
    after the last send. Gaps ended by a clocked-out retransmission, gaps at the ceiling, and
    gaps out of time order tell nothing. `backoff`: the count after `armed[0]` (1 after the first timer
    retransmission, 0 after a fast one)."""
    k, out = backoff, []
    for a, b in itertools.pairwise(armed):
        inside = [e for e in errors if a.time < e.time <= b.time]
        gap = b.time - a.time
        if inside and b.time - max(e.time for e in inside) < CLOCKED_OUT:
            # Clocked out by one of them, the rest after it: the send comes between, wherever a
            # capture away from the sender shows it (a router's shows the burst first), and the
            # count cannot fall below 0 before it (the error that clocked it out undid a step).
            k = max(0, k - len(inside) + 1)
            continue
        k = max(0, k - len(inside))
        if 0 < gap < 0.95 * rto_max:  # one that goes back (the capture's clock stepped) tells nothing
            out.append((k, gap))
        k += 1
    return out, k


def base_rto(
    armed: Sequence[FrameRef], errors: Sequence[IcmpError], backoff: int, rto_max: float
) -> float | None:
    """The RTO before backoff (srtt's, in the revert), read from the captured gaps: each is
    that RTO shifted by the backoff it was armed with, late by the wheel only, so the least
    gap / 2^backoff is the best estimate."""
    gaps, _ = captured_gaps(armed, errors, backoff, rto_max)
    return min((gap / float(2**k) for k, gap in gaps), default=None)


def next_expiry(
    armed: Sequence[FrameRef], errors: Sequence[IcmpError], backoff: int, base: float, rto_max: float
) -> tuple[float, bool]:
    """When the timer was due after the last captured send (epoch s), the errors replayed on the
    backoff count. Its RTO is the last captured gap armed at the same count, if any (the wheel
    is late by the same at the same length: measured, level gaps of 4.096 s for 4 s), else the
    base RTO backed off that many times. An error after that send undoes a step and re-arms it
    (True: without the user timeout's clamp), or, the RTO spent, runs the handler at once."""
    gaps, k = captured_gaps(armed, errors, backoff, rto_max)
    seen = {level: gap for level, gap in gaps}  # the latest gap at each count

    def rto(level: int) -> float:
        return seen.get(level, min(base * 2.0**level, rto_max))

    last = armed[-1].time
    due, rearmed = last + rto(k), False
    for e in sorted((e for e in errors if e.time > last), key=lambda e: e.time):
        if e.time >= due or k == 0:
            continue
        k -= 1
        due, rearmed = max(e.time, last + rto(k)), True
    return due, rearmed


def replay(
    base: float,
    backoff: int,
    first: float,
    errors: Sequence[tuple[float, IcmpError]],
    budget: float,
    *,
    rto_max: float,
    user_timeout: bool,
) -> Replay:
    """Run the timer from its send `first` s after the stamp, at `backoff` there, on the RTO
    `base` (before backoff), with the head's errors at their times (s after the stamp): where
    the handler first runs at or past `budget` (tcp_retries2's, or the user timeout, to which
    each re-arm by the handler is clamped)."""
    b, cap, end = _us(base), _us(rto_max), _us(budget)
    k, sent = backoff, _us(first)
    due = _arm(sent, b, k, cap, end, user_timeout)
    queue = sorted(((_us(t), e) for t, e in errors), key=lambda x: x[0])
    out = Replay(abort=0.0, base=base)
    aborted: int | None = None
    while True:
        if queue and queue[0][0] < due:
            at, e = queue.pop(0)
            if at < sent or k == 0:
                out.idle.append(e)
                continue
            k -= 1  # tcp_ld_RTO_revert
            out.reverted.append(e)
            left = min(b << k, cap) - (at - sent)
            if left > 0:
                due = at + left  # re-armed without the user timeout's clamp
                continue
            out.clocked_out.append(e)
            out.at_errors.append(at / _US)
            due = at  # the handler runs now, at the error's time: no timer, no wheel
        t = due
        out.fires.append(t / _US)
        if aborted is not None:
            return out
        if t >= end:
            aborted = t
            out.abort = t / _US
            queue = []  # the socket is gone: later errors find none
        sent, k = t, k + 1  # the handler's retransmission (or, past the abort, the one it would be)
        due = _arm(sent, b, k, cap, end, user_timeout and aborted is None)


def _arm(sent: int, b: int, k: int, cap: int, end: int, clamp: bool) -> int:
    """The handler's re-arm: the RTO backed off k times, to the ceiling; with a user timeout,
    clamped to expire at it (tcp_clamp_rto_to_user_timeout: at least a jiffy on)."""
    due = sent + min(b << k, cap)
    return max(min(due, end), sent + 1) if clamp else due
