"""The RTO abort's observed end after ICMP errors undid backoff steps mid-run
(recorded/icmp_midrun, see its README). The timer's next expiry after the last retransmission
was read as the RTO at the first retransmission doubled once per retransmission since: 92.1 s
after the first retransmission, where the backoff had started again at the ICMPs and the kernel
gave up 7.006 s after it (0.913 s after the last retransmission, whose gap was 0.412 s). Now
the errors are replayed on the backoff count (test_icmp_timer has the prediction's side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "icmp_midrun"
APP_EHOSTUNREACH = 1796280512.583472
SETTINGS = parse_settings(["net.ipv4.tcp_retries2=4"], [])


def _rto(end: float | None = None) -> KernelPrediction:
    """The prediction, with the capture going on to `end` (default: its last segment)."""
    analysis = analyze_file(RECORDED / "client.pcap")
    (conn,) = analysis.connections
    assert conn.last_frame is not None
    until = conn.last_frame.time if end is None else end
    (p,) = [
        p
        for p in predict_connection(conn, lambda _: SETTINGS, analysis.icmp_errors, until)
        if p.kind == "rto-abort"
    ]
    return p


def test_the_next_expiry_is_the_gap_at_the_same_backoff_after_the_icmp_reverts() -> None:
    """The errors replayed on the backoff count: after the last retransmission the timer was
    backed off twice, as for the 0.832 s gaps before (icmp_timer.next_expiry); doubling the
    last gap, 0.412 s, gave 6.916 s."""
    p = _rto(APP_EHOSTUNREACH + 5)
    assert p.observed_s is not None
    assert p.observed_s == pytest.approx(6.924, abs=0.001)
    took = APP_EHOSTUNREACH - p.start_time
    assert took == pytest.approx(7.006, abs=0.001)
    assert 0 <= took / p.observed_s - 1 <= 0.125  # the timer wheel's lateness, no more
    assert p.app_error == "EHOSTUNREACH"


def test_when_the_capture_ends_first_it_says_so_with_that_expiry() -> None:
    p = _rto()
    assert p.observed_s is None
    assert "the timer's next expiry would be 6.924 s after it" in p.observed
