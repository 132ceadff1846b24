"""The 3 s fallback RTO after a re-sent SYN, on client captures recorded in the netns harness
(kernel 6.18, timestamps off, the first SYN dropped once in w): the client connects on the
retransmitted SYN, so Linux has no RTT sample (Karn) and its RTO is TCP_TIMEOUT_FALLBACK, 3 s
(ss shows no rto: it hides 3000). It writes 100 B every 200 or 300 ms (Nagle on) into a cut
made before any data was acknowledged, with tcp_retries2 3 or 2.

Measured: a loss probe carrying the held-back writes 1.01 s after the original send (the probe
timeout without an RTT is 1 s), and the one timer retransmission 4.0 s and 3.2 s after that
(5.02 s and 4.25 s after the original: in the first, a full-sized segment went out as the timer
was due and made it a probe timer, 1 s more). ETIMEDOUT 6.20 s and 6.14 s after that
retransmission: the 3 s RTO doubled, past either budget. Twice the gap from the original send
(10.0 s, 8.5 s) is not the timer."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "syn_fallback_rto"
# file -> (tcp_retries2, the client app's ETIMEDOUT, epoch s)
DATA = {"retries2_3.pcap": (3, 1796192859.8774126), "retries2_2.pcap": (2, 1796193535.973605)}


def predicted(name: str, retries2: int, end: float | None = None) -> KernelPrediction:
    analysis = analyze_file(RECORDED / name)
    (conn,) = analysis.connections
    assert conn.handshake_retransmitted.client == 1 and conn.handshake_retransmitted.server == 0
    s = parse_settings([f"tcp_retries2={retries2}"], [])
    (p,) = predict_connection(conn, lambda _: s, analysis.icmp_errors, end)
    return p


@pytest.mark.parametrize("name", sorted(DATA))
def test_the_abort_is_the_fallback_rto_doubled_after_the_one_retransmission(name: str) -> None:
    retries2, etimedout = DATA[name]
    p = predicted(name, retries2, etimedout + 0.5)
    assert (p.kind, p.side, p.app_error) == ("rto-abort", "client", "ETIMEDOUT")
    took = etimedout - p.start_time
    assert p.predicted_s == pytest.approx(6.0)
    assert 1.0 <= took / p.predicted_s <= 1.05, (took, p.predicted_s)  # the wheel is late, never early
    assert p.within_tolerance is True
    assert any("fallback RTO" in e for e in p.explanations)
