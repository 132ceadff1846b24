"""ICMP errors that undo the RTO's backoff (RFC 6069), on a capture recorded in the netns harness
on 6.18: a route rto_min of 1 s and tcp_retries2=6 on the client, a cut in w for 5 s (the gaps
double to 4.1 s), then w rejects the client's segments with ICMP host-unreachable.

Measured: each error undoes one backoff step, so the gaps stay level at 4.096 s (no ceiling
set: tcp_rto_max_ms is 120 s); the app gets EHOSTUNREACH 26.624 s after the first
retransmission, one level gap after the last."""

from __future__ import annotations

from pathlib import Path

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

CAPTURE = Path(__file__).parent / "recorded" / "icmp_revert" / "rto_min_1000_retries2_6.pcap"
APP_ERROR = 1796180718.825547  # the client's EHOSTUNREACH event, epoch s


def rto_prediction() -> KernelPrediction:
    analysis = analyze_file(CAPTURE)
    (conn,) = analysis.connections
    s = parse_settings(["tcp_retries2=6"], [])
    (p,) = predict_connection(conn, lambda _: s, analysis.icmp_errors, APP_ERROR + 1)
    return p


def test_level_gaps_from_reverting_icmp_are_not_called_a_ceiling() -> None:
    p = rto_prediction()
    assert (p.kind, p.app_error) == ("rto-abort", "EHOSTUNREACH")
    assert any("undid a backoff step" in e for e in p.explanations)
    assert not [e for e in p.explanations if "ceiling" in e or "tcp_rto_max_ms" in e]


def test_the_end_is_inferred_one_level_gap_after_the_last_retransmission() -> None:
    p = rto_prediction()
    assert p.observed_s is not None
    assert abs(p.observed_s - (APP_ERROR - p.start_time)) <= 0.05
