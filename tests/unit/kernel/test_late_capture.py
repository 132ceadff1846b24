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


def _from_record(tmp_path: Path, first: int, extra_s: float = 0.0) -> Path:
    """a_full.pcap from its record `first` (0-based) on; with `extra_s`, a packet of another
    connection that long after the last, so that the capture goes on."""
    raw = (RECORDED / "a_full.pcap").read_bytes()
    records, at = [], 24
    while at < len(raw):
        (caplen,) = struct.unpack_from("<I", raw, at + 8)
        records.append(bytearray(raw[at : at + 16 + caplen]))
        at += 16 + caplen
    kept = records[first:]
    if extra_s:
        other = bytearray(records[2])
        sec, usec = struct.unpack_from("<II", records[-1], 0)
        struct.pack_into("<II", other, 0, sec + int(extra_s), usec)
        struct.pack_into(">H", other, 16 + 40, 55555)  # SLL2 (20) + IPv4 (20): the source port
        kept.append(other)
    out = tmp_path / f"from{first}.pcap"
    out.write_bytes(raw[:24] + b"".join(map(bytes, kept)))
    return out


def test_an_open_connections_original_send_first_bounds_from_its_stamp(tmp_path: Path) -> None:
    """Captured from the head's original send on (a connection open and idle before the
    capture): its first send may be the original, so the bound counts as if it were, and the
    kernel's real end (this run's app error) is within it."""
    path = _from_record(tmp_path, 17, extra_s=20)
    analysis = analyze_file(path)
    conn = next(c for c in analysis.connections if c.oldest_unacked is not None)
    assert conn.handshake == "missing" and conn.first_frame == conn.oldest_unacked
    (p,) = [
        p
        for p in predict_connection(conn, lambda _: SETTINGS, analysis.icmp_errors, APP_ETIMEDOUT + 20)
        if p.kind == "rto-abort"
    ]
    assert p.upper_bound
    took = APP_ETIMEDOUT - p.start_time
    assert 0 < took <= p.predicted_s
    assert p.within_tolerance is True and p.observed_s is not None
    assert abs(p.observed_s - took) < 0.5  # the inferred end is the kernel's, not a doubled guess


def test_a_single_send_still_in_flight_is_no_prediction(tmp_path: Path) -> None:
    path = _from_record(tmp_path, 17)
    raw = path.read_bytes()
    (caplen,) = struct.unpack_from("<I", raw, 24 + 8)
    one = tmp_path / "one.pcap"
    one.write_bytes(raw[: 24 + 16 + caplen])
    analysis = analyze_file(one)
    (conn,) = analysis.connections
    assert not [
        p for p in predict_connection(conn, lambda _: SETTINGS, analysis.icmp_errors) if p.kind == "rto-abort"
    ]
