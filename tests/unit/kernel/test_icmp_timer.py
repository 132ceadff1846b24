"""The RTO abort after ICMP errors that undo backoff steps (tcp_ld_RTO_revert), on captures
recorded on 6.18 (recorded/icmp_timer, see its README, and recorded/icmp_midrun): the model
replays the errors quoting the head on its timer, at their times, and predicts the first run of
the timer's handler past the budget. Before, it doubled from the first RTO as if no error had
come: 12.851 s where the kernel ended 17.304 s after the first retransmission, 6.540 s where it
ended 9.368 s after it (6.601 s for 9.144 s over IPv6), 3.000 s where a user timeout ended
4.548 s after it, 10.419 s where the kernel gave up after 7.006 s."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.kernel.icmp_timer import captured_gaps
from orchestrator.kernel.predict import WHEEL_SLACK, KernelPrediction, near, predict_connection
from orchestrator.kernel.settings import KernelSettings, parse_settings
from orchestrator.pcap.icmp import IcmpError
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import FrameRef

RECORDED = Path(__file__).parent / "recorded"
TIMER = RECORDED / "icmp_timer"
# capture, sysctls, socket options, the app's error (epoch s)
EVERY_THIRD = ("reject_every_third_retries2_5.pcap", ["tcp_retries2=5"], [], 1796311100.688034)
EVERY_OTHER = ("reject_every_other_retries2_4.pcap", ["tcp_retries2=4"], [], 1796312045.584222)
V6_NO_ROUTE = ("v6_no_route_every_other_retries2_4.pcap", ["tcp_retries2=4"], [], 1796312384.012030)
BURSTS = ("crafted_bursts_retries2_5.pcap", ["tcp_retries2=5"], [], 1796311165.195970)
USER_3000 = ("user_timeout_3000.pcap", [], ["TCP_USER_TIMEOUT=3000"], 1796311135.724070)
USER_5000 = ("user_timeout_5000_every_third.pcap", [], ["TCP_USER_TIMEOUT=5000"], 1796311261.548094)
MIDRUN_ERROR = 1796280512.583472


def _rto(
    path: Path, sysctls: list[str], sockopts: list[str], end: float, keep: object = None
) -> KernelPrediction:
    """The client's RTO prediction, the capture taken to go on until `end`; `keep`, if given,
    picks the ICMP errors the model is shown."""
    analysis = analyze_file(path)
    (conn,) = analysis.connections
    s = parse_settings(sysctls, sockopts)
    errors = analysis.icmp_errors if keep is None else [e for e in analysis.icmp_errors if keep(e)]  # type: ignore[operator]
    (p,) = [p for p in predict_connection(conn, lambda _: s, errors, end) if p.kind == "rto-abort"]
    return p


def _case(
    case: tuple[str, list[str], list[str], float], keep: object = None
) -> tuple[KernelPrediction, float]:
    name, sysctls, sockopts, error = case
    p = _rto(TIMER / name, sysctls, sockopts, error + 1, keep)
    return p, error - p.start_time


@pytest.mark.parametrize(
    ("case", "took"),
    [
        (EVERY_THIRD, 17.304),
        (EVERY_OTHER, 9.368),
        (V6_NO_ROUTE, 9.144),
        (BURSTS, 16.612),
        (USER_3000, 4.548),
        (USER_5000, 5.020),
    ],
    ids=["every-third", "every-other", "v6-no-route", "bursts", "user-timeout-3000", "user-timeout-5000"],
)
def test_the_abort_is_where_the_replayed_timer_fires_past_the_budget(
    case: tuple[str, list[str], list[str], float], took: float
) -> None:
    p, kernel = _case(case)
    assert kernel == pytest.approx(took, abs=0.001)
    assert near(kernel, p.predicted_s), (kernel, p.predicted_s)
    if case is USER_5000:  # the clamp ended it, which sends nothing: the packets bound the end
        assert p.observed_s is None and p.observed_window is not None
        assert p.observed_window[0] < kernel <= p.observed_window[1]
    else:
        assert p.observed_s is not None and near(kernel, p.observed_s)
    assert p.within_tolerance
    assert p.app_error == ("ENETUNREACH" if case is V6_NO_ROUTE else "EHOSTUNREACH")
    assert any(e.startswith("reverted backoff: ") for e in p.explanations)


def test_reverts_can_put_the_abort_one_rto_later_than_doubling() -> None:
    """Every third send rejected: the errors moved the fires sooner, one just short of the
    budget, so the abort came at the next, later than the timer doubling without them."""
    p, kernel = _case(EVERY_THIRD)
    without, _ = _case(EVERY_THIRD, keep=lambda e: False)
    assert without.predicted_s < 13.0 < p.predicted_s
    assert not near(kernel, without.predicted_s)
    (note,) = [e for e in p.explanations if e.startswith("reverted backoff: 3 ")]
    assert f"not {12.647:.3f} s" in note or "not 12.6" in note


def test_a_revert_after_the_last_retransmission_outlives_the_user_timeout() -> None:
    p, kernel = _case(USER_3000)
    assert p.predicted_s > 3.0 * (1 + WHEEL_SLACK)
    assert kernel > 3.0 * (1 + WHEEL_SLACK)
    assert "re-armed the timer past the user timeout" in p.basis


def test_reverts_mid_run_leave_the_user_timeout_where_it_was() -> None:
    p, _ = _case(USER_5000)
    assert p.predicted_s == pytest.approx(5.0)
    assert "as without them" in next(e for e in p.explanations if e.startswith("reverted backoff: 2 "))


def test_bursts_count_the_clocked_out_retransmission_and_the_errors_that_could_not() -> None:
    p, _ = _case(BURSTS)
    (reverted,) = [e for e in p.explanations if e.startswith("reverted backoff: 4 ICMP")]
    assert "1 of them clocking out a retransmission at once" in reverted
    (idle,) = [e for e in p.explanations if "undid no backoff step" in e]
    assert "ICMP port unreachable never undoes one" in idle
    assert "1 quoted another segment than the oldest unacknowledged one" in idle


def _not_reverting(e: IcmpError) -> bool:
    return e.code == 3 or e.tcp_seq % 100 == 94  # port unreachable, or quoting seq + 50


def test_errors_that_cannot_revert_leave_the_doubling_prediction() -> None:
    """The same capture shown only its port unreachable and its error quoting seq + 50: no step
    undone, so the prediction is the one without errors, and the note says why."""
    p, _ = _case(BURSTS, keep=_not_reverting)
    without, _ = _case(BURSTS, keep=lambda e: False)
    assert p.predicted_s == without.predicted_s
    assert not any(e.startswith("reverted backoff: ") for e in p.explanations)
    (idle,) = [e for e in p.explanations if e.startswith("no reverted backoff: 2 ")]
    assert "the timer doubled as without them" in idle


def test_an_error_before_the_first_timer_retransmission_has_no_backoff_to_undo() -> None:
    """The rejected sends' errors moved to just after the head's original send (backoff 0,
    icsk_retransmits 0): nothing undone, the doubling prediction stands."""
    analysis = analyze_file(TIMER / EVERY_THIRD[0])
    (conn,) = analysis.connections
    assert conn.oldest_unacked is not None
    early = [
        e._replace(time=conn.oldest_unacked.time + 0.001 * (i + 1))
        for i, e in enumerate(analysis.icmp_errors)
    ]
    s = parse_settings(EVERY_THIRD[1], [])
    (p,) = predict_connection(conn, lambda _: s, early, EVERY_THIRD[3] + 1)
    without, _ = _case(EVERY_THIRD, keep=lambda e: False)
    assert p.predicted_s == without.predicted_s
    (idle,) = [e for e in p.explanations if e.startswith("no reverted backoff: 3 ")]
    assert "came with no backoff to undo" in idle


def test_the_midrun_bursts_bring_the_abort_where_the_kernel_gave_up() -> None:
    """recorded/icmp_midrun: bursts of host unreachables from a router whose neighbour entry
    failed; the kernel gave up 7.006 s after the first retransmission."""
    p = _rto(RECORDED / "icmp_midrun" / "client.pcap", ["net.ipv4.tcp_retries2=4"], [], MIDRUN_ERROR + 5)
    kernel = MIDRUN_ERROR - p.start_time
    assert kernel == pytest.approx(7.006, abs=0.001)
    assert near(kernel, p.predicted_s), p.predicted_s
    assert p.within_tolerance


def test_a_router_capture_of_the_midrun_bursts_reads_the_same_timer() -> None:
    """The same run captured on the router (-i any: recorded/../tcp/recorded/copies): there each
    burst of errors comes before the retransmission one of them clocked out, which the client
    sent after the first; the backoff count must not fall below 0 before that send, or the base
    RTO reads half (0.102 s)."""
    router = Path(__file__).parents[1] / "tcp" / "recorded" / "copies" / "router_any_cut.pcap"
    settings = ["net.ipv4.tcp_retries2=4"]
    at_router = _rto(router, settings, [], MIDRUN_ERROR + 5)
    at_client = _rto(RECORDED / "icmp_midrun" / "client.pcap", settings, [], MIDRUN_ERROR + 5)
    assert at_router.predicted_s == pytest.approx(at_client.predicted_s, abs=0.002)
    assert "a base RTO of 0.204 s" in at_router.basis


def test_a_clock_step_in_the_capture_tells_no_rto() -> None:
    # A capture whose clock stepped back between two of the head's sends (an NTP step, or captures
    # merged out of order): the gap went negative, the replay's base RTO with it, and the timer
    # ran backwards until an OverflowError. Found by bit flips in this recorded capture.
    analysis = analyze_file(RECORDED / "icmp_kinds" / "rto4_host_unreachable.pcap")
    conn = analysis.connections[0]
    assert len(conn.head_frames) > 8 and analysis.icmp_errors
    f = conn.head_frames[5]
    stepped = replace(conn, head_frames=[*conn.head_frames[:5], FrameRef(f.file, f.frame, f.time - 2**21)])
    stepped.head_frames += conn.head_frames[6:]
    (p,) = predict_connection(stepped, lambda _: KernelSettings(), analysis.icmp_errors, conn.last_frame.time)
    assert p.kind == "rto-abort" and p.predicted_s > 900  # tcp_retries2's 924.6 s budget, and a fire past it
    gaps, _k = captured_gaps(stepped.head_frames[1:], analysis.icmp_errors, 1, 120.0)
    assert gaps and all(g > 0 for _level, g in gaps)
