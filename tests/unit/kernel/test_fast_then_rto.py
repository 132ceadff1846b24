"""Fast retransmissions, then the timer's: a bulk transfer whose one segment the path always drops
(recorded in rv3- namespaces, a userspace forwarder dropping every send of the 60th data segment,
tcp_retries2=5, 2 ms each way; headers only). The head was fast-retransmitted twice, 6 ms apart
(the kernel's TCPFastRetrans 2, TCPLostRetransmit 6), then the timer fired 5 times, doubling from
0.211 s, and the app got ETIMEDOUT 13.72 s after the first retransmission (TCPTimeouts 6,
TCPAbortOnTimeout 1). The RTO is not the 6 ms between the fast ones."""

from __future__ import annotations

from pathlib import Path

from orchestrator.kernel import rto
from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import KernelSettings, parse_settings
from orchestrator.kernel.timers import fast_retransmissions
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.verdict.expectations import check_backoff

RECORDED = Path(__file__).parent / "recorded" / "fast_then_rto" / "a.pcap"
APP_ETIMEDOUT = 1796179268.8375134  # the client's error, by its own clock (the capture's)
SETTINGS = parse_settings(["net.ipv4.tcp_retries2=5"], [])


def _conn() -> tuple[ConnectionSummary, KernelPrediction]:
    analysis = analyze_file(RECORDED)
    (conn,) = analysis.connections
    (p,) = [
        p
        for p in predict_connection(conn, lambda _: SETTINGS, analysis.icmp_errors, APP_ETIMEDOUT + 5)
        if p.kind == "rto-abort"
    ]
    return conn, p


def test_the_capture_is_the_story() -> None:
    conn, _ = _conn()
    assert conn.retransmissions.client == 7  # the kernel's TcpRetransSegs
    assert conn.backoff_gaps_s[1] < 0.01 and conn.backoff_gaps_s[2] > 0.2  # fast, then the timer


def test_the_rto_is_read_after_the_fast_retransmissions() -> None:
    _, p = _conn()
    took = APP_ETIMEDOUT - p.start_time
    assert p.start_frame is not None and p.start_frame == _conn()[0].backoff_frames[1]  # the stamp
    assert "0.211 s at that retransmission" in p.basis
    assert abs(p.predicted_s / took - 1) < 0.05
    assert p.observed_s is not None and abs(p.observed_s - took) < 0.5
    assert p.within_tolerance is True
    assert not any("fits what the capture shows" in e for e in p.explanations)
    assert any(e.startswith("the first retransmissions, 2 of them") for e in p.explanations)


def test_the_backoff_check_doubles_from_the_timers_first_fire() -> None:
    conn, _ = _conn()
    check = check_backoff(conn, 0.25, [], None)
    assert check.passed, check.evidence


def test_fast_gaps_are_only_leading_ones_far_under_the_floor() -> None:
    assert fast_retransmissions([0.006, 0.211, 0.444]) == 1
    assert fast_retransmissions([0.006, 0.007, 0.211]) == 2
    assert fast_retransmissions([0.211, 0.444, 0.9]) == 0  # a fast one, then the timer: no gap to drop
    assert fast_retransmissions([0.05, 0.1, 0.2]) == 0  # a lowered rto_min doubling: no jump
    assert fast_retransmissions([0.15, 0.9]) == 0  # not under half the 200 ms floor
    assert fast_retransmissions([0.006]) == 0  # nothing after it to tell


def test_a_budget_the_fast_retransmissions_spent_ends_it_at_the_timers_first_check() -> None:
    # A user timeout (or budget) shorter than the fast retransmissions' 6 ms: it raised ValueError
    # (a negative budget left). The clamped timer ends it at once after them; tcp_retries2's
    # timer at its first expiry.
    analysis = analyze_file(RECORDED)
    (conn,) = analysis.connections
    tiny = parse_settings([], ["TCP_USER_TIMEOUT=1"])
    (p,) = [
        p for p in predict_connection(conn, lambda _: tiny, [], APP_ETIMEDOUT + 5) if p.kind == "rto-abort"
    ]
    offset = conn.head_frames[2].time - conn.head_frames[1].time  # from the first fast one to the second
    assert abs(offset - 0.006) < 0.002 and p.predicted_s == round(offset, 6)
    three = parse_settings([], ["TCP_USER_TIMEOUT=3000"])
    (q,) = [
        q for q in predict_connection(conn, lambda _: three, [], APP_ETIMEDOUT + 5) if q.kind == "rto-abort"
    ]
    assert q.predicted_s == 3.0  # a budget left after them: the clamp, as before


def _rto(conn: ConnectionSummary, s: KernelSettings) -> list[KernelPrediction]:
    return [p for p in predict_connection(conn, lambda _: s, [], APP_ETIMEDOUT + 5) if p.kind == "rto-abort"]


def test_a_spent_retries2_budget_ends_it_at_the_timers_first_expiry() -> None:
    assert rto._from_armed(-0.01, 0.3, KernelSettings(), 0) == 0.3  # the next expiry, not at once
    assert rto._from_armed(-0.01, 3.0, parse_settings(["tcp_rto_max_ms=1000"], []), 0) == 1.0
    assert rto._from_armed(0.5, 0.3, KernelSettings(), 0) == 0.9  # left: 0.3 then 0.6 past it
