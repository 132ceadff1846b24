"""The Linux TCP timers, as pure functions: when a kernel retransmits and when it gives up.

Sources: Linux net/ipv4/tcp_timer.c, tcp_output.c, include/net/tcp.h and
Documentation/networking/ip-sysctl.rst; each rule below was also measured on real kernels
(docs/kernel-facts.md, /work/shared/TCP-FACTS.md).

* ``tcp_model_timeout(sk, boundary, rto_base)`` turns ``tcp_retries2`` (and
  ``tcp_syn_retries``) into a time budget: RTO doubling from ``rto_base`` until it would
  pass the RTO's ceiling, then linear::

      thresh = ilog2(rto_max / rto_base)                # 9 for rto_base = 200 ms, 120 s
      boundary <= thresh: ((2 << boundary) - 1) * rto_base
      otherwise:          ((2 << thresh) - 1) * rto_base + (boundary - thresh) * rto_max

  The ceiling is TCP_RTO_MAX (120 s); kernels from 6.15 let ``tcp_rto_max_ms`` (per
  namespace) or TCP_RTO_MAX_MS (per socket) lower it, to 1 s at least. It caps the timer's
  doubling and shortens the budget (measured on 6.18: ``tcp_rto_max_ms=1000`` and
  ``tcp_retries2=6`` give 5.4 s, not 25.4 s; a SYN's timer stays at 1 s). A listener's
  SYN-ACK timer does not follow it (measured: 1, 2, 4 s with ``tcp_rto_max_ms=1000``).

* ``retransmits_timed_out`` measures that budget from ``tp->retrans_stamp``: the time of the
  **first retransmission** (``tcp_retransmit_skb``: "save stamp of the first (attempted)
  retransmit"), not the original send; a tail-loss probe goes through
  ``__tcp_retransmit_skb`` and sets no stamp. The check runs only when the retransmission
  timer fires (``tcp_write_timeout``), so the abort is the first expiry at or past
  stamp + budget. It sends nothing (no FIN, no RST); the app gets ETIMEDOUT, or the soft
  error an ICMP left (EHOSTUNREACH, ...).
* A thin stream (fewer than 4 segments in flight) with ``tcp_thin_linear_timeouts`` (per
  namespace) or TCP_THIN_LINEAR_TIMEOUTS (per socket) set, in ESTABLISHED, keeps its RTO
  level instead of doubling while ``icsk_retransmits`` <= TCP_THIN_LINEAR_RETRIES (6):
  the 6 gaps after the first 6 timer retransmissions are the RTO, then it doubles
  (``tcp_retransmit_timer``). The budget is still ``tcp_model_timeout``'s, in 200 ms units.
* TCP_USER_TIMEOUT replaces the budget, from the same stamp, and the timer is clamped to
  expire right at it (``tcp_clamp_rto_to_user_timeout``): the abort is stamp + user timeout.
* SYN_SENT (``tcp_write_timeout``): the connect ends at the first expiry where the SYN was
  retransmitted ``tcp_syn_retries`` + ``tcp_syn_linear_timeouts`` times, or where
  ``tcp_model_timeout(tcp_syn_retries, 1 s)`` has passed since the first SYN. The SYN's timer
  starts at TCP_TIMEOUT_INIT (1 s) and stays there for the first ``tcp_syn_linear_timeouts``
  + 1 expiries (kernels from 6.5; 4 by default, 0 before), then doubles.
* A listener's half-open request (SYN_RECV, ``reqsk_timer_handler``) retransmits its SYN-ACK
  at 1 s doubling, and is dropped silently at the expiry after ``tcp_synack_retries``
  retransmissions.
* ``tcp_keepalive_timer``: after ``keepalive_time`` with nothing received a probe goes out,
  then one every ``keepalive_intvl``; any segment received starts the count again; when
  ``keepalive_probes`` are out unanswered the next run sends an RST and reports ETIMEDOUT,
  at idle + probes x intvl after the last segment received. With TCP_USER_TIMEOUT it gives
  up at the first run at or past the user timeout once a probe is out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

__all__ = [
    "TCP_RTO_MAX",
    "TCP_RTO_MIN",
    "TCP_THIN_LINEAR_RETRIES",
    "TCP_TIMEOUT_INIT",
    "backoff_schedule",
    "fast_retransmissions",
    "keepalive_abort_after",
    "keepalive_probe_times",
    "next_timer_expiry",
    "retransmission_times",
    "rto_abort_after",
    "rto_abort_at",
    "rto_abort_from_stamp",
    "rto_aborts_from_stamp",
    "syn_schedule",
    "syn_timeout_after",
    "synack_schedule",
    "timer_fires",
    "timer_gap",
    "user_timeout_abort_after",
]

TCP_RTO_MIN = 0.2  # s, include/net/tcp.h: HZ / 5
TCP_RTO_MAX = 120.0  # s, include/net/tcp.h: 120 * HZ
TCP_TIMEOUT_INIT = 1.0  # s, include/net/tcp.h: the first SYN's RTO
TCP_THIN_LINEAR_RETRIES = 6  # include/net/tcp.h: a thin stream's timer retransmissions at a level RTO

# Timer arithmetic is done in integer microseconds so that "fires exactly at the
# budget" compares as the kernel's jiffies do, without float drift.
_US = 1_000_000


def _us(seconds: float) -> int:
    return round(seconds * _US)


def _model_timeout_us(boundary: int, rto_base_us: int, rto_max_us: int) -> int:
    if boundary < 0:
        raise ValueError(f"retries must be >= 0, not {boundary}")
    if rto_base_us <= 0:
        raise ValueError("rto_base must be positive")
    thresh = max(0, int(math.log2(rto_max_us / rto_base_us)))  # ilog2(TCP_RTO_MAX / rto_base)
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base_us
    return ((2 << thresh) - 1) * rto_base_us + (boundary - thresh) * rto_max_us


def rto_abort_after(retries2: int, rto_min: float = TCP_RTO_MIN, rto_max: float = TCP_RTO_MAX) -> float:
    """The time budget ``tcp_retries2`` stands for, in seconds (``tcp_model_timeout``),
    counted from the first retransmission. 15 -> 924.6, 8 -> 102.2, 5 -> 12.6, 3 -> 3.0."""
    return _model_timeout_us(retries2, _us(rto_min), _us(rto_max)) / _US


def rto_abort_from_stamp(
    budget: float,
    rto: float,
    *,
    rto_max: float = TCP_RTO_MAX,
    user_timeout: bool = False,
    ends_at_ceiling: bool = False,
    linear: int = 0,
) -> float:
    """When the abort comes, in seconds after the first retransmission (the stamp), for a
    budget (tcp_retries2's, or a user timeout with ``user_timeout``) and the RTO the timer
    was armed with at the stamp (``rto``: the gap to the next retransmission). The timer
    doubles from there, capped at ``rto_max``; the abort is the first expiry at or past the
    budget, or the budget itself for a user timeout (the timer is clamped to it).
    ``ends_at_ceiling``: an orphan with tcp_orphan_retries=0, whose 0 counts as 8 only while
    the socket is "alive", its RTO under the ceiling (tcp_write_timeout: `icsk_rto <
    tcp_rto_max(sk)`); the first expiry of a ceiling-long RTO finds 0 retries, a budget long
    spent, and ends it (measured on 6.18 with tcp_rto_max_ms 1000 and 2000: gone 2.25 and
    4.93 s after the first retransmission, not past 8's budgets of 7.4 and 13 s).
    ``linear``: how many gaps from the stamp stay at ``rto`` before it doubles (a thin
    stream's linear timeouts: TCP_THIN_LINEAR_RETRIES; 0 or 1 for plain doubling)."""
    if budget < 0 or rto <= 0:
        raise ValueError("the budget must be >= 0 and the RTO positive")
    if user_timeout:
        return float(budget)
    t, gap, cap, end = 0, _us(rto), _us(rto_max), _us(budget)
    k = 1  # the timer retransmission the gap follows (1: the stamp)
    while t < end:
        if gap >= cap:  # at the ceiling for good: the rest are whole ceilings, counted at once
            return (t + cap if ends_at_ceiling else t + -(-(end - t) // cap) * cap) / _US
        t += gap
        if k >= linear:
            gap *= 2
        k += 1
    return t / _US


def rto_aborts_from_stamp(
    budgets: Sequence[float], rto: float, *, rto_max: float = TCP_RTO_MAX, linear: int = 0
) -> list[float]:
    """`rto_abort_from_stamp` for each of `budgets` (in increasing order), the same timer walked
    once: only where it stops depends on the budget (a capture's fit tries 31 of them)."""
    if rto <= 0 or (budgets and budgets[0] < 0):
        raise ValueError("the budget must be >= 0 and the RTO positive")
    t, gap, cap = 0, _us(rto), _us(rto_max)
    k = 1
    out: list[float] = []
    last = 0
    for end in map(_us, budgets):
        if end < last:
            raise ValueError("the budgets must come in increasing order")
        last = end
        while t < end:
            t += min(gap, cap)
            if k >= linear:
                gap *= 2
            k += 1
        out.append(t / _US)
    return out


@functools.lru_cache(maxsize=1024)
def timer_fires(
    budget: float, rto: float, rto_max: float = TCP_RTO_MAX, linear: int = 0
) -> tuple[float, ...]:
    """The timer's fires after the stamp (s, rounded to the us), `timer_gap` after each other, up
    to the first at or past `budget` (the model's abort), then one beyond it. Remembered: a
    connection's prediction asks twice (its knife edges, then `late_fires`), with the same RTO."""
    # `timer_gap` inlined, the same arithmetic: a capture's predictions count thousands of fires.
    # rto * 2**e is exact, so doubling the gap is the same float; at the ceiling it stays there.
    level = max(linear, 1)
    fires: list[float] = []
    t = 0.0
    k = 1
    gap = rto
    while True:
        t += gap if gap < rto_max else rto_max
        fires.append(round(t, 6))
        if k >= level:
            gap *= 2
        k += 1
        if fires[-1] >= budget:
            break
    t += gap if gap < rto_max else rto_max
    fires.append(round(t, 6))
    return tuple(fires)


def timer_gap(k: int, rto: float, rto_max: float = TCP_RTO_MAX, linear: int = 0) -> float:
    """The gap after the ``k``-th timer retransmission (1: the stamp), the timer armed with
    ``rto`` after the first: level for the first ``linear`` (a thin stream's), then doubling."""
    return min(rto * float(2 ** max(0, k - max(linear, 1))), rto_max)


def fast_retransmissions(gaps: list[float]) -> int:
    """How many of the leading `gaps` between successive retransmissions of one segment are
    not the retransmission timer's: fast retransmissions (duplicate ACKs, SACK, RACK marking
    a retransmission lost again) come an RTT or so apart, far under the RTO's 200 ms floor,
    and each re-arms the timer, whose fires then come an RTO after the last of them and double.
    The leading gaps under half that floor are fast if a gap follows them that jumps to over
    four times the last of them (a lowered route rto_min doubles; it does not jump)."""
    n = 0
    while n < len(gaps) and gaps[n] < TCP_RTO_MIN / 2:
        n += 1
    return n if 0 < n < len(gaps) and gaps[n] > 4 * gaps[n - 1] else 0


def next_timer_expiry(last_send: float, last_gap: float, rto_max: float = TCP_RTO_MAX) -> float:
    """When the retransmission timer fires after the last retransmission: the RTO doubles again,
    up to ``rto_max``. The kernel tests its budget only then (tcp_write_timeout), so an abort
    that follows silence happens at this time, not exactly at the budget."""
    return last_send + min(2 * last_gap, rto_max)


def retransmission_times(
    retries2: int,
    rto: float = TCP_RTO_MIN,
    *,
    rto_min: float = TCP_RTO_MIN,
    rto_max: float = TCP_RTO_MAX,
    user_timeout: float | None = None,
) -> list[float]:
    """When each retransmission of an unacknowledged segment goes out, in seconds after its
    original send, with no tail-loss probe: the first after ``rto`` (at least ``rto_min``),
    then the timer doubles, capped at ``rto_max``; the expiry at or past the first
    retransmission + the budget aborts instead of retransmitting."""
    return _fires(retries2, rto, rto_min, rto_max, user_timeout)[:-1]


def rto_abort_at(
    retries2: int,
    rto: float = TCP_RTO_MIN,
    *,
    rto_min: float = TCP_RTO_MIN,
    rto_max: float = TCP_RTO_MAX,
    user_timeout: float | None = None,
) -> float:
    """When the application gets ETIMEDOUT, in seconds after the original send (no
    tail-loss probe): the first retransmission at ``rto``, then the abort from that stamp."""
    return _fires(retries2, rto, rto_min, rto_max, user_timeout)[-1]


def _fires(
    retries2: int, rto: float, rto_min: float, rto_max: float, user_timeout: float | None
) -> list[float]:
    cap = _us(rto_max)
    first = min(max(_us(rto), _us(rto_min)), cap)
    budget = _us(user_timeout) if user_timeout else _model_timeout_us(retries2, _us(rto_min), cap)
    fires = [first]  # the first retransmission: the stamp
    gap = 2 * first
    while fires[-1] - first < budget:
        nxt = fires[-1] + min(gap, cap)
        if user_timeout:  # tcp_clamp_rto_to_user_timeout
            nxt = min(nxt, first + budget)
        fires.append(nxt)
        gap *= 2
    return [f / _US for f in fires]


def backoff_schedule(
    retries2: int,
    rto: float = TCP_RTO_MIN,
    *,
    rto_min: float = TCP_RTO_MIN,
    rto_max: float = TCP_RTO_MAX,
    user_timeout: float | None = None,
) -> list[float]:
    """The gaps between successive sends of an unacknowledged segment: original send to the
    first retransmission, then between retransmissions (the convention of
    ``ConnectionSummary.backoff_gaps_s``). ``backoff_schedule(5)`` -> [0.2, 0.4, ..., 6.4]."""
    times = retransmission_times(retries2, rto, rto_min=rto_min, rto_max=rto_max, user_timeout=user_timeout)
    return [round(b - a, 6) for a, b in zip([0.0, *times], times, strict=False)]


def user_timeout_abort_after(user_timeout: float) -> float:
    """TCP_USER_TIMEOUT with unacknowledged data: the abort comes at the user timeout itself
    (the RTO is clamped to it), counted from the first retransmission."""
    if user_timeout <= 0:
        raise ValueError("user_timeout must be positive (0 means: not set)")
    return float(user_timeout)


def keepalive_probe_times(idle: float, intvl: float, probes: int) -> list[float]:
    """When the keep-alive probes go out, in seconds after the last segment received."""
    return [idle + k * intvl for k in range(probes)]


def keepalive_abort_after(
    idle: float, intvl: float, probes: int, *, user_timeout: float | None = None
) -> float:
    """When keep-alive gives up (RST, ETIMEDOUT), in seconds after the last segment received:
    idle + probes x intvl; with TCP_USER_TIMEOUT, the first timer run at or past it once at
    least one probe is out (idle + k x intvl, k >= 1)."""
    if idle < 0 or intvl < 0 or probes < 0:
        raise ValueError("keep-alive settings must not be negative")
    if user_timeout is not None and user_timeout > 0:
        if intvl == 0:
            return max(idle, user_timeout)
        k = max(1, math.ceil((user_timeout - idle) / intvl - 1e-9))
        return idle + k * intvl
    return idle + probes * intvl


def syn_schedule(
    syn_retries: int = 6,
    *,
    linear_timeouts: int = 4,
    rto_init: float = TCP_TIMEOUT_INIT,
    user_timeout: float | None = None,
    rto_max: float = TCP_RTO_MAX,
) -> tuple[list[float], float]:
    """The SYN retransmissions of a connect that is never answered, and its ETIMEDOUT, in
    seconds after the first SYN: (retransmission times, abort time). The timer starts at
    ``rto_init`` and stays there while fewer than ``linear_timeouts`` + 1 expiries have
    passed, then doubles (capped at ``rto_max``); an expiry aborts once the SYN went out
    ``syn_retries`` + ``linear_timeouts`` times again, or once ``tcp_model_timeout(syn_retries,
    rto_init)`` (or a user timeout, in its place) has passed since the first SYN. The time is
    not checked before the first retransmission (``retransmits_timed_out`` wants
    ``icsk_retransmits``), and a user timeout clamps the re-armed timer to it
    (``tcp_clamp_rto_to_user_timeout``, in SYN_SENT too): measured on 6.18, TCP_USER_TIMEOUT=2500
    gave ETIMEDOUT 2.535 s after the first SYN (not at the 3 s expiry), and 500 one SYN
    retransmission at 1.02 s and ETIMEDOUT 8 ms after it.

    6 retries, 4 linear: 10 retransmissions, ETIMEDOUT at 131 s; 2 and 4: 5, at 7 s; 6 and
    0 (kernels before 6.5): 6, at 127 s."""
    if syn_retries < 0 or linear_timeouts < 0 or rto_init <= 0:
        raise ValueError("syn_retries and linear_timeouts must be >= 0, rto_init positive")
    cap = _us(rto_max)
    budget = _us(user_timeout) if user_timeout else _model_timeout_us(syn_retries, _us(rto_init), cap)
    gap = _us(rto_init)
    t, expiries, wait = 0, 0, min(gap, cap)
    sent: list[int] = []
    while True:
        t += wait
        expiries += 1
        if len(sent) >= syn_retries + linear_timeouts or (sent and t >= budget):
            return [s / _US for s in sent], t / _US
        sent.append(t)
        if expiries > linear_timeouts:
            gap *= 2
        wait = min(gap, cap, max(0, budget - t)) if user_timeout else min(gap, cap)


def syn_timeout_after(
    syn_retries: int = 6, *, linear_timeouts: int = 0, rto_init: float = TCP_TIMEOUT_INIT
) -> float:
    """connect()'s ETIMEDOUT, in seconds after the first SYN (`syn_schedule`'s abort)."""
    return syn_schedule(syn_retries, linear_timeouts=linear_timeouts, rto_init=rto_init)[1]


def synack_schedule(
    synack_retries: int = 5, *, rto_init: float = TCP_TIMEOUT_INIT
) -> tuple[list[float], float]:
    """A half-open request whose handshake never completes: its SYN-ACK retransmissions and
    the moment the listener drops it silently, in seconds after the first SYN-ACK.
    5 -> retransmissions at 1, 3, 7, 15, 31 s, dropped at 63 s."""
    if synack_retries < 0 or rto_init <= 0:
        raise ValueError("synack_retries must be >= 0, rto_init positive")
    t, gap, cap = 0, _us(rto_init), _us(TCP_RTO_MAX)
    sent: list[float] = []
    for _ in range(synack_retries):
        t += min(gap, cap)
        sent.append(t / _US)
        gap *= 2
    return sent, (t + min(gap, cap)) / _US
