"""The Linux timer model: the numbers in TCP-FACTS.md, and the structure behind them."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.kernel.timers import (
    TCP_RTO_MAX,
    backoff_schedule,
    keepalive_abort_after,
    keepalive_probe_times,
    retransmission_times,
    rto_abort_after,
    rto_abort_at,
    syn_timeout_after,
    user_timeout_abort_after,
)


@pytest.mark.parametrize(
    ("retries2", "seconds"),
    [(15, 924.6), (8, 102.2), (5, 12.6), (3, 3.0), (0, 0.2), (9, 204.6), (10, 324.6)],
)
def test_rto_abort_after_matches_tcp_model_timeout(retries2: int, seconds: float) -> None:
    assert rto_abort_after(retries2) == pytest.approx(seconds)


def test_rto_abort_after_other_rto_min() -> None:
    # rto_base 1 s: ilog2(120 / 1) = 6 doublings, then linear in TCP_RTO_MAX.
    assert rto_abort_after(6, rto_min=1.0) == pytest.approx(127.0)
    assert rto_abort_after(8, rto_min=1.0) == pytest.approx(127.0 + 2 * 120.0)


def test_backoff_schedule_doubles_then_caps() -> None:
    assert backoff_schedule(5) == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2])
    gaps = backoff_schedule(15)
    assert len(gaps) == 15
    assert gaps[:10] == pytest.approx([0.2 * 2**k for k in range(10)])
    assert gaps[10:] == pytest.approx([TCP_RTO_MAX] * 5)
    assert sum(gaps) + TCP_RTO_MAX == pytest.approx(rto_abort_after(15))


def test_a_larger_rto_fits_fewer_retransmissions_and_aborts_later() -> None:
    assert backoff_schedule(5, rto=0.3) == pytest.approx([0.3, 0.6, 1.2, 2.4, 4.8])
    assert rto_abort_at(5, rto=0.3) == pytest.approx(18.9)  # the first timer run past 12.6 s
    assert len(backoff_schedule(8, rto=0.5)) < len(backoff_schedule(8))
    assert retransmission_times(3) == pytest.approx([0.2, 0.6, 1.4])


def test_user_timeout_replaces_the_budget() -> None:
    assert backoff_schedule(15, user_timeout=5.0) == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert rto_abort_at(15, user_timeout=5.0) == pytest.approx(5.0)  # the RTO is clamped to it
    assert user_timeout_abort_after(5.0) == 5.0
    with pytest.raises(ValueError):
        user_timeout_abort_after(0)


def test_keepalive() -> None:
    assert keepalive_abort_after(7200, 75, 9) == 7875
    assert keepalive_abort_after(2, 1, 3) == 5
    assert keepalive_probe_times(2, 1, 3) == [2, 3, 4]
    # With TCP_USER_TIMEOUT: the first timer run at or past it, once a probe is out.
    assert keepalive_abort_after(2, 1, 3, user_timeout=4.5) == 5
    assert keepalive_abort_after(2, 1, 9, user_timeout=1.0) == 3  # at least one probe first
    assert keepalive_abort_after(10, 5, 9, user_timeout=20.0) == 20
    with pytest.raises(ValueError):
        keepalive_abort_after(-1, 1, 1)


def test_syn_timeout() -> None:
    assert syn_timeout_after(6) == pytest.approx(127.0)
    assert syn_timeout_after(6, linear_timeouts=4) == pytest.approx(131.0)
    assert syn_timeout_after(0) == pytest.approx(1.0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        rto_abort_after(-1)
    with pytest.raises(ValueError):
        rto_abort_after(3, rto_min=0)
    with pytest.raises(ValueError):
        syn_timeout_after(-1)


@given(retries2=st.integers(min_value=0, max_value=40))
def test_schedule_is_consistent_with_the_budget(retries2: int) -> None:
    """With rto = rto_min the timer fires exactly on the budget: retries2 retransmissions,
    the abort at rto_abort_after, gaps doubling up to TCP_RTO_MAX."""
    gaps = backoff_schedule(retries2)
    assert len(gaps) == retries2
    assert rto_abort_at(retries2) == pytest.approx(rto_abort_after(retries2))
    for a, b in itertools.pairwise(gaps):
        assert b == pytest.approx(min(2 * a, TCP_RTO_MAX))
    assert rto_abort_after(retries2) < rto_abort_after(retries2 + 1)


@given(
    retries2=st.integers(min_value=1, max_value=20),
    rto=st.floats(min_value=0.2, max_value=10.0, allow_nan=False),
)
def test_abort_never_before_the_budget(retries2: int, rto: float) -> None:
    times = retransmission_times(retries2, rto)
    budget = rto_abort_after(retries2)
    assert all(t < budget + 1e-9 for t in times)
    assert budget - 1e-6 <= rto_abort_at(retries2, rto) < budget + 2 * TCP_RTO_MAX
