"""The model's end from the settings alone (a sweep's curve): the same numbers as the predictions."""

from __future__ import annotations

import pytest

from orchestrator.kernel.curve import abort_after, budget_after, rto_at_stamp
from orchestrator.kernel.settings import KernelSettings


def settings(**kw: float) -> KernelSettings:
    s = KernelSettings()
    for name, value in kw.items():
        s = s.with_value(name, value, f"{name}={value:g}")
    return s


@pytest.mark.parametrize(
    ("retries2", "rto", "end"),
    [
        # The first expiry at or past the budget, the timer doubling from the RTO at the stamp.
        (3, 0.408, 0.408 * 15),  # 3 s budget: 2.856 s falls short, the next expiry aborts
        (5, 0.408, 0.408 * 31),  # 12.6 s budget: 12.648 s is past it
        (5, 0.400, 0.400 * 63),  # exactly 0.4 s: 12.4 s falls short, one more doubling
        (8, 0.408, 0.408 * 255),  # 102.2 s budget
    ],
)
def test_rto_abort_is_the_first_expiry_past_the_budget(retries2: int, rto: float, end: float) -> None:
    s = settings(retries2=retries2)
    assert abort_after("rto-abort", s, rto) == pytest.approx(end)
    assert budget_after("rto-abort", s) == pytest.approx((2 ** (retries2 + 1) - 1) * 0.2)


def test_rto_abort_needs_the_rto_unless_a_user_timeout_decides() -> None:
    assert abort_after("rto-abort", settings(retries2=5)) is None
    assert abort_after("rto-abort", settings(user_timeout=4.0), 0.408) == 4.0
    assert budget_after("rto-abort", settings(user_timeout=4.0)) == 4.0


def test_keepalive_is_idle_plus_count_times_interval() -> None:
    s = settings(keepalive_time=2, keepalive_intvl=1, keepalive_probes=3)
    assert abort_after("keepalive-abort", s) == 5.0
    assert budget_after("keepalive-abort", s) is None
    # With TCP_USER_TIMEOUT: the first probe run at or past it.
    assert (
        abort_after("keepalive-abort", settings(keepalive_time=2, keepalive_intvl=1, user_timeout=3.5)) == 4.0
    )


def test_handshakes() -> None:
    assert abort_after("connect-timeout", settings(syn_retries=2, syn_linear_timeouts=0)) == 7.0
    assert abort_after("synack-timeout", settings(synack_retries=5)) == 63.0
    assert abort_after("icmp-error", KernelSettings()) is None


def test_rto_at_stamp_takes_the_least_late_gap() -> None:
    # Gaps 0.41, 0.84 (late), 1.64: the wheel fires late, never early.
    assert rto_at_stamp([10.0, 10.41, 11.25, 12.89]) == pytest.approx(0.41)
    assert rto_at_stamp([10.0, 10.45, 11.29]) == pytest.approx(0.42)
    # A run of 500 ms retries (sends failing locally) stops the chain.
    assert rto_at_stamp([10.0, 10.4, 11.2, 11.7, 12.2]) == pytest.approx(0.4)
    assert rto_at_stamp([10.0]) is None
