"""The RTO abort counted from the timer's last captured fire, not only from the stamp.

The model runs the timer from the first retransmission on the RTO read there (the least
captured gap over its backoff: the wheel only fires late). Each real fire is late by the wheel
(up to 1/8 of its RTO), and the lateness adds up: near the budget the fires the capture shows
can cross it one fire sooner (or later) than the model's. Measured (netns, 6.18, tcp_retries2=4,
a budget of 6.2 s, one-way cut): fires 0.436, 1.260 and 2.928 s after the first retransmission
where the model's are 0.412, 1.236 and 2.884; the model's next one, 6.180 s, falls short of the
budget and its abort is 12.772 s; from the last captured fire the next is 6.224 s, past it, and
the app's ETIMEDOUT came 6.25 s after the first retransmission.
"""

from __future__ import annotations

import itertools

from orchestrator.kernel.predict import WHEEL_SLACK
from orchestrator.kernel.timer_reading import plateau
from orchestrator.kernel.timers import timer_fires, timer_gap
from orchestrator.tcp.connection import FrameRef

__all__ = ["Anchored", "anchor_on_last_fire"]

_EARLY = 0.01  # a gap this much shorter than the model's is still its (the RTO read to the us)
_JIFFIES = 0.012  # s: three jiffies at HZ=250 beyond the wheel's slack

# (the abort, the other fires it may come at: the knife edges)
Anchored = tuple[float, list[float]]


def anchor_on_last_fire(
    armed: list[FrameRef],
    stamp: FrameRef,
    rto: float,
    budget: float,
    rto_max: float,
    linear: int,
    offset: float,
) -> Anchored | None:
    """The abort from the last captured fire of the timer `armed` (its first send armed it), if
    that puts it at another fire than the model's from the stamp: None where they agree on the
    fire, where fewer than two sends were captured, or where a captured fire is already past the
    budget (the timer went on: the capture does not fit the settings, and the model says so)."""
    if len(armed) < 2:
        return None
    if round(armed[-1].time - stamp.time, 6) >= budget:
        return None
    gaps = [b.time - a.time for a, b in itertools.pairwise(armed)]
    if plateau(gaps) is not None:
        return None  # a ceiling the settings do not give: the model's timer is not this one
    if not all(_late_only(g, timer_gap(k, rto, rto_max, linear)) for k, g in enumerate(gaps, 1)):
        return None  # not the model's timer fired late (errors, local drops, another timer)
    fires = [round(a.time - stamp.time, 6) for a in armed[1:]]
    # The model's timer on from the last captured fire, up to the first past the budget, then
    # one beyond; rounded only where they differ from the model's fires (rarely: their count).
    level = max(linear, 1)
    n, t = len(armed), fires[-1]
    gap = timer_gap(n, rto, rto_max, linear)
    later: list[float] = []
    while t < budget:
        t += gap if gap < rto_max else rto_max
        later.append(t)
        if n >= level:
            gap *= 2  # exact: `timer_gap`'s next, until the ceiling caps it
        n += 1
    later.append(t + (gap if gap < rto_max else rto_max))
    if len(fires) + len(later) == len(timer_fires(budget - offset, rto, rto_max, linear)):
        return None  # the same fire as the model's
    fires += [round(f, 6) for f in later]
    return fires[-2], _edges_after(fires, budget, len(armed) - 1)


def _edges_after(fires: list[float], budget: float, captured: int) -> list[float]:
    """The other fires the abort may come at: the wheel may still make each fire after the
    `captured` ones late (up to 1/8 of its time from the last captured one), and the RTO read
    may be a little long: a fire just short of the budget may end it, or the abort's just past
    it may really be short and the next one end it."""
    last, abort = fires[captured - 1], fires[-2]
    out = [a for a in fires[captured:-2] if last + (a - last) * (1 + WHEEL_SLACK) >= budget]
    if last + (abort - last) / (1 + WHEEL_SLACK) < budget:
        out.append(fires[-1])
    return out


def _late_only(gap: float, model: float) -> bool:
    """Whether a captured gap is the model's, fired late by the wheel only (up to 1/8, and a few
    jiffies), never sooner (the model's RTO is the least the gaps allow)."""
    return model * (1 - _EARLY) <= gap <= model * (1 + WHEEL_SLACK) + _JIFFIES
