"""icmp_timer.replay: the retransmission timer with errors that undo backoff steps, as Linux's
tcp_ld_RTO_revert and tcp_retransmit_timer run it (the captures' side is test_icmp_timer)."""

from __future__ import annotations

import pytest

from orchestrator.kernel.icmp_timer import base_rto, replay
from orchestrator.kernel.timers import rto_abort_after, rto_abort_from_stamp
from orchestrator.pcap.icmp import IcmpError
from orchestrator.tcp.connection import FrameRef


def _error(t: float) -> IcmpError:
    return IcmpError(1, t, "10.0.0.1", 4, 3, 1, "10.0.0.2", 40000, "10.0.0.3", 7000, 1, "f.pcap", 0)


def _run(errors: list[float], budget: float, *, user_timeout: bool = False) -> float:
    at = [(t, _error(t)) for t in errors]
    return replay(0.2, 1, 0.0, at, budget, rto_max=120.0, user_timeout=user_timeout).abort


def test_without_errors_it_is_the_doubling_model() -> None:
    for n in (3, 5, 8, 15):
        budget = rto_abort_after(n)
        assert _run([], budget) == pytest.approx(rto_abort_from_stamp(budget, 0.4))
    assert _run([], 3.0, user_timeout=True) == pytest.approx(3.0)


def test_an_error_with_rto_left_re_arms_the_timer_for_it() -> None:
    """tcp_retries2=3 (3 s): fires at 0.4, 1.2, 2.8 s, the next due at 6.0; an error at 3.5 s
    halves the RTO to 1.6 s from the send at 2.8: due at 4.4, past the budget, the abort."""
    assert _run([], 3.0) == pytest.approx(6.0)
    assert _run([3.5], 3.0) == pytest.approx(4.4)


def test_an_error_whose_rto_is_spent_runs_the_handler_at_once() -> None:
    """At 5.0 s the halved RTO (1.6 s from 2.8) is spent: tcp_retransmit_timer runs then, finds
    the budget passed, and aborts at the error's time."""
    assert _run([5.0], 3.0) == pytest.approx(5.0)
    run = replay(0.2, 1, 0.0, [(5.0, _error(5.0))], 3.0, rto_max=120.0, user_timeout=False)
    assert len(run.clocked_out) == 1 and run.at_errors == [pytest.approx(5.0)]


def test_a_re_arm_by_an_error_is_not_clamped_to_the_user_timeout() -> None:
    """User timeout 3 s: the timer after 2.8 s is clamped to 3.0; an error at 2.81 s re-arms it
    for the 1.6 s RTO left, unclamped: the abort at 4.4 s."""
    assert _run([2.81], 3.0, user_timeout=True) == pytest.approx(4.4)


def test_errors_with_no_backoff_left_undo_nothing() -> None:
    """Three errors right after the first retransmission (backoff 1): one undoes it, the
    next two find none."""
    run = replay(0.2, 1, 0.0, [(0.001, _error(0.001))] * 3, 3.0, rto_max=120.0, user_timeout=False)
    assert (len(run.reverted), len(run.idle)) == (1, 2)


def test_the_base_rto_skips_a_gap_a_clocked_out_retransmission_ended() -> None:
    """Sends at 0, 0.41, 1.24 s, then 1.3001 (two errors just before it, the second clocking it
    out), then 2.1201: the gaps 0.41 (backoff 1) and 0.83 (2) give 0.205 and 0.2075; the
    clocked-out 0.0601 would give 0.03 (backoff 1 after the errors) and is not read; the 0.82
    after it was armed at backoff 2 (3 - 2 errors + 1): 0.205."""
    sends = [FrameRef("f.pcap", i, t) for i, t in enumerate([0.0, 0.41, 1.24, 1.3001, 2.1201])]
    errors = [_error(1.2999), _error(1.3)]
    assert base_rto(sends, errors, 1, 120.0) == pytest.approx(0.205)
