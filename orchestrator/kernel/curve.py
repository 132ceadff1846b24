"""The kernel model's end as a function of the settings alone, counted from the same moment as
each kind's prediction: what a sweep's plot draws between (and beyond) the values that ran.

The rules are the predictions' (`rto`, `keepalive`, `handshake`), without a capture to read:
for an RTO abort, the RTO the timer had at the first retransmission is given (a capture shows
it: `rto_at_stamp`), since the abort is the first expiry at or past the budget and that
depends on it (with 408 ms, tcp_retries2 = 3's budget of 3 s ends at 6.12 s, 5's of 12.6 s at
12.65 s).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from orchestrator.kernel.settings import KernelSettings
from orchestrator.kernel.timers import (
    keepalive_abort_after,
    rto_abort_after,
    rto_abort_from_stamp,
    syn_schedule,
    synack_schedule,
)

__all__ = ["STARTS", "abort_after", "budget_after", "rto_at_stamp"]

# What each kind's times count from (the prediction's start_time), in a plot's words.
STARTS = {
    "rto-abort": "the first retransmission",
    "keepalive-abort": "the last segment received",
    "zerowindow-abort": "the first unanswered zero-window probe",
    "connect-timeout": "the first SYN",
    "synack-timeout": "the first SYN-ACK",
}


def abort_after(kind: str, s: KernelSettings, rto: float | None = None) -> float | None:
    """When the kernel gives up, in seconds after the kind's start; None for a kind the
    settings alone do not decide (an ICMP error), or an RTO abort without `rto`."""
    if kind == "rto-abort":
        if s.user_timeout:
            return float(s.user_timeout)
        budget = rto_abort_after(s.retries2, rto_max=s.rto_max)
        return rto_abort_from_stamp(budget, rto, rto_max=s.rto_max) if rto else None
    if kind == "keepalive-abort":
        return keepalive_abort_after(
            s.keepalive_time, s.keepalive_intvl, s.keepalive_probes, user_timeout=s.user_timeout
        )
    if kind == "connect-timeout":
        return syn_schedule(
            s.syn_retries,
            linear_timeouts=s.syn_linear_timeouts,
            user_timeout=s.user_timeout or None,
            rto_max=s.rto_max,
        )[1]
    if kind == "synack-timeout":
        return synack_schedule(s.synack_retries)[1]
    return None


def budget_after(kind: str, s: KernelSettings) -> float | None:
    """The RTO abort's budget itself (tcp_retries2's `tcp_model_timeout`, or the user timeout):
    the abort is the first timer expiry at or past it. None for the other kinds."""
    if kind != "rto-abort":
        return None
    return float(s.user_timeout) if s.user_timeout else rto_abort_after(s.retries2, rto_max=s.rto_max)


def rto_at_stamp(times: Sequence[float]) -> float | None:
    """The RTO at the first retransmission, from the times of the timer's retransmissions of
    one segment (the first is the stamp), as `rto` reads it: the timer wheel only fires late,
    so the least of gap_k / 2^k over the gaps that double is the best estimate. None with
    fewer than two."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if not gaps or gaps[0] <= 0:
        return None
    chain = [gaps[0]]
    for a, b in itertools.pairwise(gaps):
        if not 1.6 <= b / a <= 2.6:
            break
        chain.append(b)
    return min(g / 2.0**k for k, g in enumerate(chain))
