"""The Linux timer model: the numbers in TCP-FACTS.md, and the structure behind them: the
budget counts from the first retransmission; SYN_SENT has its own rules."""

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
    rto_abort_from_stamp,
    syn_schedule,
    syn_timeout_after,
    synack_schedule,
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
    # RTO exactly 200 ms: the 6th timer run after the first retransmission is 12.4 s past it,
    # short of the 12.6 s budget, so it retransmits once more.
    assert backoff_schedule(5) == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4])
    gaps = backoff_schedule(15, rto=0.21)
    assert gaps[:10] == pytest.approx([0.21 * 2**k for k in range(10)])
    assert all(g == pytest.approx(TCP_RTO_MAX) for g in gaps[10:])


def test_the_budget_counts_from_the_first_retransmission() -> None:
    # A real RTO is the 200 ms floor plus srtt: 210 ms. Sends at 0.21, 0.63, 1.47, 3.15,
    # 6.51; the next run, at 13.23 s, is 13.02 s after the first retransmission: >= 12.6 s.
    assert retransmission_times(5, rto=0.21) == pytest.approx([0.21, 0.63, 1.47, 3.15, 6.51])
    assert rto_abort_at(5, rto=0.21) == pytest.approx(13.23)
    # Measured (power_cut): first retransmission at +0.413 s, RTO 0.42 s from there: the
    # abort at +13.313 s, 12.9 s after the stamp.
    assert 0.413 + rto_abort_from_stamp(12.6, 0.42) == pytest.approx(13.433)
    assert rto_abort_from_stamp(3.0, 0.42) == pytest.approx(6.3)  # 0.42, 1.26, 2.94: short of 3 s


def test_a_larger_rto_fits_fewer_retransmissions_and_aborts_later() -> None:
    assert backoff_schedule(5, rto=0.3) == pytest.approx([0.3, 0.6, 1.2, 2.4, 4.8])
    assert rto_abort_at(5, rto=0.3) == pytest.approx(18.9)  # 18.6 s after the stamp
    assert len(backoff_schedule(8, rto=0.5)) < len(backoff_schedule(8, rto=0.21))


def test_user_timeout_replaces_the_budget_from_the_stamp() -> None:
    # Measured: TCP_USER_TIMEOUT=3000 aborted 3.004 s after the first retransmission.
    assert rto_abort_at(15, rto=0.42, user_timeout=3.0) == pytest.approx(3.42)
    assert retransmission_times(15, rto=0.42, user_timeout=3.0) == pytest.approx([0.42, 1.26, 2.94])
    assert rto_abort_from_stamp(3.0, 0.42, user_timeout=True) == 3.0
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
    # Linear timeouts (6.5+, 4 by default): 1 s apart five times, then doubling; the count
    # (retries + linear) ends it at 131 s.
    assert syn_schedule(6, linear_timeouts=4) == ([1, 2, 3, 4, 5, 7, 11, 19, 35, 67], 131)
    # Measured with tcp_syn_retries=2: five SYNs 1 s apart, ETIMEDOUT 7.13 s after the first:
    # the time limit tcp_model_timeout(2, 1 s) = 7 s ends it before the count.
    assert syn_schedule(2, linear_timeouts=4) == ([1, 2, 3, 4, 5], 7)
    assert syn_schedule(1, linear_timeouts=4) == ([1, 2], 3)
    assert syn_schedule(6, linear_timeouts=0) == ([1, 3, 7, 15, 31, 63], 127)  # before 6.5
    assert syn_timeout_after(6) == pytest.approx(127.0)
    assert syn_timeout_after(0) == pytest.approx(1.0)
    # A user timeout takes the time limit's place and clamps the SYN's timer to it (measured:
    # 2500 -> ETIMEDOUT 2.535 s after the first SYN; 500 -> one retransmission at 1.02 s, then
    # ETIMEDOUT at once); the count still holds.
    assert syn_schedule(6, linear_timeouts=4, user_timeout=10.0) == ([1, 2, 3, 4, 5, 7], 10)
    assert syn_schedule(6, linear_timeouts=4, user_timeout=2.5) == ([1, 2], 2.5)
    assert syn_schedule(6, linear_timeouts=4, user_timeout=0.5) == ([1], 1)
    assert syn_schedule(1, linear_timeouts=4, user_timeout=60.0) == ([1, 2, 3, 4, 5], 7)


def test_synack_timeout() -> None:
    assert synack_schedule(5) == ([1, 3, 7, 15, 31], 63)
    assert synack_schedule(1) == ([1], 3)
    assert synack_schedule(0) == ([], 1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        rto_abort_after(-1)
    with pytest.raises(ValueError):
        rto_abort_after(3, rto_min=0)
    with pytest.raises(ValueError):
        syn_timeout_after(-1)


@given(
    retries2=st.integers(min_value=0, max_value=30),
    rto=st.floats(min_value=0.2, max_value=10.0, allow_nan=False),
)
def test_the_abort_is_the_first_expiry_past_the_stamp_and_budget(retries2: int, rto: float) -> None:
    """Every retransmission before the abort is less than the budget after the first one; the
    abort is not; the gaps double up to TCP_RTO_MAX."""
    times = retransmission_times(retries2, rto)
    budget = rto_abort_after(retries2)
    abort = rto_abort_at(retries2, rto)
    assert all(t - times[0] < budget + 1e-6 for t in times)
    assert abort - times[0] >= budget - 1e-6
    assert abort - times[0] < budget + TCP_RTO_MAX + 1e-6
    gaps = [b - a for a, b in itertools.pairwise([*times, abort])]
    for a, b in itertools.pairwise(gaps):
        assert b == pytest.approx(min(2 * a, TCP_RTO_MAX), abs=2e-6)
    assert rto_abort_after(retries2) < rto_abort_after(retries2 + 1)


def test_an_orphan_with_no_retries_ends_at_the_ceiling() -> None:
    """tcp_orphan_retries=0 is 8 only while the RTO is under its ceiling: the first expiry of a
    ceiling-long RTO ends the orphan (with the default 120 s ceiling, 8's budget comes first)."""
    eight = rto_abort_after(8, rto_max=1.0)
    assert rto_abort_from_stamp(eight, 0.416, rto_max=1.0) == pytest.approx(8.248)
    assert rto_abort_from_stamp(eight, 0.416, rto_max=1.0, ends_at_ceiling=True) == pytest.approx(2.248)
    assert rto_abort_from_stamp(102.2, 0.2, ends_at_ceiling=True) == rto_abort_from_stamp(102.2, 0.2)
