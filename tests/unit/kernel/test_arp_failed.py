"""A peer gone for good, seen from the sender's own capture, recorded by `tcpscen run` on 6.18
(tests/unit/kernel/recorded/arp_failed): the server powered off, the client sending every
500 ms with the kernel defaults (tcp_retries2 15), a 90 s observation.

Measured: 8 retransmissions doubling to 13.3 s are in the capture; then, 30 s after the cut,
the client's ARP entry for the server failed, its retransmissions stopped reaching the wire
(ARP requests instead) and each drew an ICMP host unreachable from its own host, quoting it.
ss listed the socket ESTAB to the end, 10 retransmissions counted and its timer on; the app
was told nothing. The capture's silence after the 8th is not the kernel giving up."""

from __future__ import annotations

from pathlib import Path

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

HERE = Path(__file__).parent / "recorded" / "arp_failed"
GONE = HERE / "client_retries2_15.pcap"
# The pooled client behind a dropping NAT (tcp_retries2 3): its kernel did give up (ss lost the
# socket 6.2 s after the first retransmission, the app got ETIMEDOUT); no ICMP error.
ABORTED = HERE / "quiet_aborted_retries2_3.pcap"


def rto_prediction(capture: Path, sysctls: list[str], observed_s: float) -> KernelPrediction:
    """The sender's RTO prediction, its capture `observed_s` long (the run's observation)."""
    analysis = analyze_file(capture)
    (conn,) = [c for c in analysis.connections if c.retransmissions.client]
    s = parse_settings(sysctls, [])
    assert conn.first_frame is not None
    end = conn.first_frame.time + observed_s
    (p,) = [
        p for p in predict_connection(conn, lambda _: s, analysis.icmp_errors, end) if p.kind == "rto-abort"
    ]
    return p


def test_icmp_errors_quoting_later_sends_mean_the_timer_went_on() -> None:
    p = rto_prediction(GONE, [], 90)
    assert p.observed_s is None, p.observed
    assert p.observed.startswith(
        "still retransmitting: nothing of it in the capture after the retransmission"
    )
    assert "2 ICMP error(s) quote its later sends" in p.observed
    assert "reported by its own host" in p.observed
    assert "gave up" not in p.observed


def test_silence_with_no_such_error_is_still_read_as_the_kernel_giving_up() -> None:
    p = rto_prediction(ABORTED, ["tcp_retries2=3"], 25)
    assert p.observed_s is not None and abs(p.observed_s - 6.2) < 0.3, p.observed
    assert p.observed.startswith("inferred: nothing after the retransmission")
