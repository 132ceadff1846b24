"""The Linux TCP timers, as pure functions: when a kernel retransmits and when it gives up.

Sources (Linux net/ipv4/tcp_timer.c, include/net/tcp.h, Documentation/networking/ip-sysctl.rst):

* ``tcp_model_timeout(sk, boundary, rto_base)``: the time budget that
  ``tcp_retries2`` (and ``tcp_syn_retries``) stands for. RTO doubles from
  ``rto_base`` until it would pass TCP_RTO_MAX (120 s), then grows linearly::

      thresh = ilog2(TCP_RTO_MAX / rto_base)            # 9 for rto_base = 200 ms
      boundary <= thresh: ((2 << boundary) - 1) * rto_base
      otherwise:          ((2 << thresh) - 1) * rto_base + (boundary - thresh) * TCP_RTO_MAX

  ``retransmits_timed_out`` compares it (``>=``) with the time since the first
  send of the oldest unacknowledged segment (``retrans_stamp``), and only when
  the retransmission timer fires. The connection is then aborted with
  ETIMEDOUT and nothing is sent: no FIN, no RST.
* TCP_USER_TIMEOUT replaces that budget with its own value, and the RTO is
  clamped so the timer fires right at it (``tcp_clamp_rto_to_user_timeout``).
* ``tcp_keepalive_timer``: after ``keepalive_time`` of idle (since the last
  segment received) a probe goes out, then one every ``keepalive_intvl``; when
  the timer finds ``keepalive_probes`` probes unanswered it sends an RST and
  reports ETIMEDOUT, at idle + probes x intvl. With TCP_USER_TIMEOUT set it
  gives up instead at the first timer run at or after the user timeout, once
  at least one probe is out.
* SYN retransmissions start from TCP_TIMEOUT_INIT (1 s); newer kernels keep
  the first ``tcp_syn_linear_timeouts`` ones linear (1 s each) before doubling.

Not modelled: the tail-loss probe (the first retransmission may come at about
2 x SRTT instead of after an RTO) and the one-step un-backoff on ICMP
unreachable (RFC 6069). The initial RTO of a live connection is
srtt + 4 x rttvar, at least 200 ms; pass it as ``rto`` when known.
"""

from __future__ import annotations

import math

__all__ = [
    "TCP_RTO_MAX",
    "TCP_RTO_MIN",
    "TCP_TIMEOUT_INIT",
    "backoff_schedule",
    "keepalive_abort_after",
    "keepalive_probe_times",
    "retransmission_times",
    "rto_abort_after",
    "rto_abort_at",
    "syn_timeout_after",
    "user_timeout_abort_after",
]

TCP_RTO_MIN = 0.2  # s, include/net/tcp.h: HZ / 5
TCP_RTO_MAX = 120.0  # s, include/net/tcp.h: 120 * HZ
TCP_TIMEOUT_INIT = 1.0  # s, include/net/tcp.h: the first SYN's RTO

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
    """The time budget ``tcp_retries2`` stands for, in seconds (``tcp_model_timeout``).

    Counted from the first send of the oldest unacknowledged segment.
    15 -> 924.6, 8 -> 102.2, 5 -> 12.6, 3 -> 3.0 (with rto_min 0.2 s).
    """
    return _model_timeout_us(retries2, _us(rto_min), _us(rto_max)) / _US


def _fires_us(first_rto_us: int, rto_max_us: int, budget_us: int, linear: int = 0) -> list[int]:
    """Times the retransmission timer fires, up to and including the first one at or past the budget.

    The timer is armed at ``first_rto`` after the original send, doubles (after ``linear``
    undoubled rounds) and is capped at ``rto_max``.
    """
    fires: list[int] = []
    t = 0
    rto = first_rto_us
    n = 0
    while True:
        t += rto
        fires.append(t)
        if t >= budget_us:
            return fires
        n += 1
        if n > linear:
            rto = min(rto * 2, rto_max_us)


def next_timer_expiry(last_send: float, last_gap: float, rto_max: float = TCP_RTO_MAX) -> float:
    """When the retransmission timer fires after the last retransmission: the RTO doubles again,
    up to ``rto_max``. The kernel tests its budget only then (tcp_write_timeout), so an abort that
    follows silence happens at this time, not exactly at the budget."""
    return last_send + min(2 * last_gap, rto_max)


def retransmission_times(
    retries2: int,
    rto: float = TCP_RTO_MIN,
    *,
    rto_min: float = TCP_RTO_MIN,
    rto_max: float = TCP_RTO_MAX,
    user_timeout: float | None = None,
) -> list[float]:
    """When each retransmission goes out, in seconds after the original send.

    ``rto`` is the connection's RTO at the first timeout (at least ``rto_min``). The
    timer doubles up to ``rto_max``; when it fires at or past the budget
    (``rto_abort_after(retries2)``, or ``user_timeout`` when set) the kernel aborts
    instead of retransmitting.
    """
    fires = _fires(retries2, rto, rto_min, rto_max, user_timeout)
    return [f / _US for f in fires[:-1]]


def rto_abort_at(
    retries2: int,
    rto: float = TCP_RTO_MIN,
    *,
    rto_min: float = TCP_RTO_MIN,
    rto_max: float = TCP_RTO_MAX,
    user_timeout: float | None = None,
) -> float:
    """When the application gets ETIMEDOUT, in seconds after the original send: the first
    timer run at or past the budget. Equals ``rto_abort_after(retries2)`` when ``rto`` is
    exactly ``rto_min``; a larger RTO can only make it later."""
    return _fires(retries2, rto, rto_min, rto_max, user_timeout)[-1] / _US


def _fires(
    retries2: int, rto: float, rto_min: float, rto_max: float, user_timeout: float | None
) -> list[int]:
    rto_max_us = _us(rto_max)
    first = min(max(_us(rto), _us(rto_min)), rto_max_us)
    if user_timeout is not None and user_timeout > 0:
        budget = _us(user_timeout)
        fires = _fires_us(first, rto_max_us, budget)
        # tcp_clamp_rto_to_user_timeout: the last timer is shortened to expire at the budget.
        fires[-1] = min(fires[-1], budget)
        return fires
    return _fires_us(first, rto_max_us, _model_timeout_us(retries2, _us(rto_min), rto_max_us))


def backoff_schedule(
    retries2: int,
    rto: float = TCP_RTO_MIN,
    *,
    rto_min: float = TCP_RTO_MIN,
    rto_max: float = TCP_RTO_MAX,
    user_timeout: float | None = None,
) -> list[float]:
    """The gaps between successive transmissions of an unacknowledged segment: original send
    to the first retransmission, then between retransmissions (the convention of
    ``ConnectionSummary.backoff_gaps_s``). RTO doubling from ``rto``, capped at ``rto_max``.

    ``backoff_schedule(5)`` -> [0.2, 0.4, 0.8, 1.6, 3.2] (the abort comes 6.4 s later, at 12.6 s).
    """
    times = retransmission_times(retries2, rto, rto_min=rto_min, rto_max=rto_max, user_timeout=user_timeout)
    gaps: list[float] = []
    prev = 0.0
    for t in times:
        gaps.append(round(t - prev, 6))
        prev = t
    return gaps


def user_timeout_abort_after(user_timeout: float) -> float:
    """TCP_USER_TIMEOUT with unacknowledged data: the abort comes at the user timeout itself
    (the RTO is clamped to it), counted from the first send of the oldest unacknowledged segment."""
    if user_timeout <= 0:
        raise ValueError("user_timeout must be positive (0 means: not set)")
    return float(user_timeout)


def keepalive_probe_times(idle: float, intvl: float, probes: int) -> list[float]:
    """When the keep-alive probes go out, in seconds after the last segment received."""
    return [idle + k * intvl for k in range(probes)]


def keepalive_abort_after(
    idle: float, intvl: float, probes: int, *, user_timeout: float | None = None
) -> float:
    """When keep-alive gives up (RST, ETIMEDOUT), in seconds after the last segment received.

    idle + probes x intvl. With TCP_USER_TIMEOUT set, the first timer run at or past it once
    at least one probe is out: idle + k x intvl, k >= 1.
    """
    if idle < 0 or intvl < 0 or probes < 0:
        raise ValueError("keep-alive settings must not be negative")
    if user_timeout is not None and user_timeout > 0:
        if intvl == 0:
            return max(idle, user_timeout)
        k = max(1, math.ceil((user_timeout - idle) / intvl - 1e-9))
        return idle + k * intvl
    return idle + probes * intvl


def syn_timeout_after(
    syn_retries: int = 6, *, linear_timeouts: int = 0, rto_init: float = TCP_TIMEOUT_INIT
) -> float:
    """connect() timeout: the first SYN's timer is ``rto_init`` (1 s); ``linear_timeouts``
    more rounds stay at it (``tcp_syn_linear_timeouts``, 4 on kernels that have it), then
    it doubles; after ``syn_retries`` retransmissions (plus the linear ones) the next
    expiry is the ETIMEDOUT. 6 -> 127 s; 6 with 4 linear timeouts -> 131 s."""
    if syn_retries < 0 or linear_timeouts < 0:
        raise ValueError("syn_retries and linear_timeouts must be >= 0")
    t = 0
    rto = _us(rto_init)
    rto_max = _us(TCP_RTO_MAX)
    for n in range(syn_retries + linear_timeouts + 1):
        t += rto
        if n >= linear_timeouts:
            rto = min(rto * 2, rto_max)
    return t / _US
