"""The timer follows the oldest unacknowledged segment, not the most-retransmitted one (recorded
in the netns harness, kernel 6.18, `tcp_retries2=3`, offloads off, headers only: a client writing
4 KB every 10 ms; `w` dropped every send of the segment 100 kB into the stream for 1.2 s, so it
was retransmitted 24 times (fast ones about an RTT apart, then the timer's) before it got
through; then a full cut at +2 s). The head at the cut was retransmitted 4 times by the timer
(a tail-loss probe of the tail first), and the app got ETIMEDOUT 6.264 s after the first of
them (the kernel's TcpRetransSegs 29, TCPTimeouts 8, TCPAbortOnTimeout 1).

The model used to take the most-retransmitted segment's sends for the head's: it found the
head "never retransmitted", counted the budget from one minimal RTO after its send, and said
no retransmission had reached the capture point."""

from __future__ import annotations

from pathlib import Path

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import ConnectionSummary

RECORDED = Path(__file__).parent / "recorded" / "head_not_most_retransmitted" / "a.pcap"
APP_ETIMEDOUT = 1796190889.1895885  # the client's error, by its own clock (the capture's)
SETTINGS = parse_settings(["net.ipv4.tcp_retries2=3"], [])


def _predicted() -> tuple[ConnectionSummary, KernelPrediction]:
    analysis = analyze_file(RECORDED)
    (conn,) = analysis.connections
    (p,) = [
        p
        for p in predict_connection(conn, lambda _: SETTINGS, analysis.icmp_errors, APP_ETIMEDOUT + 1)
        if p.kind == "rto-abort"
    ]
    return conn, p


def test_the_most_retransmitted_segment_is_not_the_head() -> None:
    conn, _ = _predicted()
    assert conn.retransmissions.client == 29  # the kernel's TcpRetransSegs
    assert len(conn.backoff_frames) == 25  # the segment dropped for 1.2 s: its original, 24 more
    assert conn.oldest_unacked is not None and conn.oldest_unacked not in conn.backoff_frames
    assert conn.head_frames[0] == conn.oldest_unacked
    assert len(conn.head_frames) == 5  # the head at the cut: its original, 4 by the timer


def test_the_budget_counts_from_the_heads_first_retransmission() -> None:
    conn, p = _predicted()
    assert p.start_frame == conn.head_frames[1]
    took = APP_ETIMEDOUT - p.start_time
    assert abs(p.predicted_s / took - 1) < 0.05
    assert p.observed_s is not None and abs(p.observed_s / took - 1) < 0.05
    assert p.within_tolerance is True
    assert not any("did not reach the capture point" in e for e in p.explanations)
