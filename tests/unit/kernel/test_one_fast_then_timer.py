"""One fast retransmission, then the timer's (the live case `one_fast_then_timer`, recorded in the
netns harness, kernel 6.18, HZ=250, headers only): a client writing 1000 B every 5 ms,
tcp_retries2=3; w dropped every send of the 10th segment and all a->b data after the 11th. The
server's one SACK (for the 11th, frame 26) made the client re-send the head 52 us later (frame
27, 10 ms after its original: RACK; the kernel's TCPFastRetrans 1, TCPSackRecovery 1); then no
ACK came and the timer fired 3 times, doubling from 0.205 s (TCPTimeouts 4 with the abort's,
TcpRetransSegs 4), and the app got ETIMEDOUT 3.125 s after that fast retransmission (the same in
3 runs: 3.125-3.140 s). The budget counts from the fast one; only its gaps after it are the
timer's. Wireshark calls frame 27 a plain retransmission (one duplicate ACK, not two)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.verdict.expectations import check_backoff

RECORDED = Path(__file__).parent / "recorded" / "one_fast_then_timer" / "a.pcap"
APP_ETIMEDOUT = 1796222326.9905524  # the client's error, by its own clock (the capture's)
SETTINGS = parse_settings(["net.ipv4.tcp_retries2=3"], [])


def _judged() -> tuple[ConnectionSummary, KernelPrediction]:
    analysis = analyze_file(RECORDED)
    (conn,) = analysis.connections
    (p,) = [
        p
        for p in predict_connection(conn, lambda _: SETTINGS, analysis.icmp_errors, APP_ETIMEDOUT + 0.27)
        if p.kind == "rto-abort"
    ]
    return conn, p


def test_the_capture_is_the_story() -> None:
    conn, _ = _judged()
    assert conn.retransmissions.client == 4  # the kernel's TcpRetransSegs
    gaps = conn.backoff_gaps_s
    assert gaps[0] < 0.02 and 0.2 < gaps[1] < 0.22  # fast, then the timer's RTO


def test_the_budget_counts_from_the_fast_retransmission_and_says_so() -> None:
    conn, p = _judged()
    assert p.start_frame is not None and p.start_frame == conn.head_frames[1]  # frame 27
    assert p.start.endswith(", a fast one")
    assert "by the timer" not in p.start
    took = APP_ETIMEDOUT - p.start_time
    assert abs(p.predicted_s / took - 1) < 0.05
    assert "0.205 s at that retransmission" in p.basis  # the RTO read after the fast one
    (fast,) = [e for e in p.explanations if "fast retransmission" in e]
    assert fast.startswith("the first retransmission, 0.010 s after the original send, came far sooner")
    assert not any("is the timer's" in e for e in p.explanations)


def test_the_backoff_check_doubles_from_the_fast_retransmission() -> None:
    conn, _ = _judged()
    assert check_backoff(conn, 0.10, [], None).passed
    # A timer that did not double fails it: the same first gaps, then no backoff.
    flat = dataclasses.replace(conn, backoff_gaps_s=[0.01, 0.205, 0.205, 0.205])
    assert not check_backoff(flat, 0.10, [], None).passed
