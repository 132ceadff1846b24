"""The timer walks made cheaper for a capture's thousands of predictions give the same floats
as the plain step-by-step walks they replace (`timer_gap` after each fire, the us loop)."""

from __future__ import annotations

import itertools
import random

import pytest

from orchestrator.kernel.late_fires import Anchored, _edges_after, _late_only, anchor_on_last_fire
from orchestrator.kernel.timer_reading import plateau
from orchestrator.kernel.timers import (
    TCP_RTO_MAX,
    rto_abort_after,
    rto_abort_from_stamp,
    rto_aborts_from_stamp,
    timer_fires,
    timer_gap,
)
from orchestrator.tcp.connection import FrameRef

_US = 1_000_000


def _abort_step_by_step(
    budget: float, rto: float, rto_max: float, ends_at_ceiling: bool, linear: int
) -> float:
    t, gap, cap, end = 0, round(rto * _US), round(rto_max * _US), round(budget * _US)
    k = 1
    while t < end:
        t += min(gap, cap)
        if ends_at_ceiling and gap >= cap:
            break
        if k >= linear:
            gap *= 2
        k += 1
    return t / _US


def _fires_step_by_step(budget: float, rto: float, rto_max: float, linear: int) -> tuple[float, ...]:
    fires: list[float] = []
    t, k = 0.0, 1
    while not fires or fires[-1] < budget:
        t += timer_gap(k, rto, rto_max, linear)
        fires.append(round(t, 6))
        k += 1
    return (*fires, round(t + timer_gap(k, rto, rto_max, linear), 6))


def _cases(n: int) -> list[tuple[float, float, float, int]]:
    rng = random.Random(7)
    out = []
    for _ in range(n):
        rto_max = rng.choice([TCP_RTO_MAX, 1.0, 2.5, rng.uniform(1, 120)])
        budget = rto_abort_after(rng.randint(0, 20), rto_max=rto_max) * rng.choice(
            [1.0, rng.uniform(0.5, 1.5)]
        )
        rto = rng.choice([0.2, 0.204, rng.uniform(0.0005, 3.0), rng.uniform(0.2, 130)])
        out.append((budget, rto, rto_max, rng.choice([0, 1, 3, 6])))
    return out


@pytest.mark.parametrize("ends_at_ceiling", [False, True])
def test_the_abort_counted_at_the_ceiling_at_once_is_the_step_by_step_one(ends_at_ceiling: bool) -> None:
    for budget, rto, rto_max, linear in _cases(3000):
        got = rto_abort_from_stamp(
            budget, rto, rto_max=rto_max, ends_at_ceiling=ends_at_ceiling, linear=linear
        )
        assert got == _abort_step_by_step(budget, rto, rto_max, ends_at_ceiling, linear)


def test_the_aborts_of_many_budgets_in_one_walk_are_each_budgets_own() -> None:
    for _, rto, rto_max, linear in _cases(500):
        budgets = [rto_abort_after(n, rto_max=rto_max) for n in range(31)]
        one = [rto_abort_from_stamp(b, rto, rto_max=rto_max, linear=linear) for b in budgets]
        assert rto_aborts_from_stamp(budgets, rto, rto_max=rto_max, linear=linear) == one
    with pytest.raises(ValueError, match="increasing"):
        rto_aborts_from_stamp([3.0, 1.0], 0.2)


def test_the_fires_doubled_in_place_are_timer_gaps_after_each_other() -> None:
    for budget, rto, rto_max, linear in _cases(3000):
        assert timer_fires.__wrapped__(budget, rto, rto_max, linear) == _fires_step_by_step(
            budget, rto, rto_max, linear
        )


def _anchor_step_by_step(
    armed: list[FrameRef],
    stamp: FrameRef,
    rto: float,
    budget: float,
    rto_max: float,
    linear: int,
    offset: float,
) -> Anchored | None:
    """`anchor_on_last_fire` as it was: `timer_gap` after each fire, each rounded."""
    fires = [round(a.time - stamp.time, 6) for a in armed[1:]]
    if fires[-1] >= budget:
        return None
    gaps = [b.time - a.time for a, b in itertools.pairwise(armed)]
    if plateau(gaps) is not None:
        return None
    if not all(_late_only(g, timer_gap(k, rto, rto_max, linear)) for k, g in enumerate(gaps, 1)):
        return None
    n, t = len(armed), fires[-1]
    while t < budget:
        t += timer_gap(n, rto, rto_max, linear)
        n += 1
        fires.append(round(t, 6))
    fires.append(round(t + timer_gap(n, rto, rto_max, linear), 6))
    if len(fires) == len(timer_fires(budget - offset, rto, rto_max, linear)):
        return None
    return fires[-2], _edges_after(fires, budget, len(armed) - 1)


def test_the_walk_from_the_last_captured_fire_is_the_step_by_step_one() -> None:
    rng = random.Random(11)
    anchored = 0
    for budget, rto, rto_max, linear in _cases(3000):
        times, t = [0.0], 0.0
        for k in range(1, rng.randint(2, 7)):
            t += timer_gap(k, rto, rto_max, linear) * (1 + rng.uniform(0, 0.12))  # late, never early
            times.append(t)
        stamp = FrameRef("a.pcap", 1, 1000.0)
        armed = [FrameRef("a.pcap", i + 1, 1000.0 + x) for i, x in enumerate(times)]
        offset = rng.choice([0.0, 0.0, rng.uniform(0, 0.05)])
        got = anchor_on_last_fire(armed, stamp, rto, budget, rto_max, linear, offset)
        assert got == _anchor_step_by_step(armed, stamp, rto, budget, rto_max, linear, offset)
        anchored += got is not None
    assert anchored > 10  # the walk's other end is tried too
