"""A capture that starts in the middle of a backoff (tcpdump started 2 s after the cut, recorded
in the netns harness with tcp_retries2=5): the RTO model cannot know where the budget started, so
its end is an upper bound, and nothing claims a tcp_retries2 "fits"."""

from __future__ import annotations

import struct
from pathlib import Path

from orchestrator.kernel.predict import (
    KernelPrediction,
    predict_connection,
    prediction_from_json,
    prediction_json,
)
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "late_capture"
APP_ETIMEDOUT = 1796169531.1097188  # the client app's error event in that run
SETTINGS = parse_settings(["net.ipv4.tcp_retries2=5"], [])


def rto_of(path: Path) -> KernelPrediction:
    analysis = analyze_file(path)
    (conn,) = analysis.connections
    (p,) = [
        p
        for p in predict_connection(conn, lambda _: SETTINGS, analysis.icmp_errors, APP_ETIMEDOUT + 5)
        if p.kind == "rto-abort"
    ]
    return p


def test_from_mid_backoff_the_end_is_an_upper_bound() -> None:
    p = rto_of(RECORDED / "a_late.pcap")
    assert p.upper_bound and p.alternatives == []
    took = APP_ETIMEDOUT - p.start_time
    assert 0 < took < p.predicted_s  # the app's real end, well before the bound
    assert p.observed_s is not None and p.within_tolerance is True
    assert p.explanations[0].startswith("the capture starts with this segment")
    assert not any("fits what the capture shows" in e for e in p.explanations)
    assert prediction_from_json(prediction_json(p)).upper_bound


def test_the_whole_capture_is_judged_as_before() -> None:
    p = rto_of(RECORDED / "a_full.pcap")
    assert not p.upper_bound
    assert p.within_tolerance is True
    assert -0.10 <= (APP_ETIMEDOUT - p.start_time) / p.predicted_s - 1 <= 0.225


def test_without_the_handshake_but_with_the_original_send_it_is_not_a_bound(tmp_path: Path) -> None:
    """The same run's capture from after the handshake: the data before the cut is there, so
    the head's original send is known, and the model's time is a prediction, not a bound."""
    raw = (RECORDED / "a_full.pcap").read_bytes()
    records, at = [], 24
    while at < len(raw):
        (caplen,) = struct.unpack_from("<I", raw, at + 8)
        records.append(raw[at : at + 16 + caplen])
        at += 16 + caplen
    trimmed = tmp_path / "trimmed.pcap"
    trimmed.write_bytes(raw[:24] + b"".join(records[5:]))  # past two ARP frames and the handshake
    analysis = analyze_file(trimmed)
    (conn,) = analysis.connections
    assert conn.handshake == "missing" and conn.first_frame != conn.oldest_unacked
    p = rto_of(trimmed)
    assert not p.upper_bound and p.within_tolerance is True
