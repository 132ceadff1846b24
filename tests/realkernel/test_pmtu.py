"""A path-MTU black hole on the real kernel (MTU 1280 in w, its ICMP fragmentation-needed
dropped): the segments too large for the path vanish while small ones and the ACKs pass.
Whether the connection dies is tcp_mtu_probing's: 0 leaves the 1448-byte head retransmitted
to the tcp_retries2 abort; 1 shrinks it at the first timer fire past tcp_retries1's budget
(3 s from the first retransmission) and the connection goes on. The model must say both."""

from __future__ import annotations

import pytest

from orchestrator.kernel.predict import predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file
from tests.helpers.netns import A_ADDR, B_ADDR
from tests.realkernel.conftest import Cases
from tests.realkernel.measure import error_time, packets, tcp_model_timeout

pytestmark = pytest.mark.netns
MSS = 1448  # 1500 less the IP and TCP headers and timestamps
BASE_MSS = 1024  # tcp_base_mss: where tcp_mtu_probing=1 starts when it suspects a black hole


@pytest.mark.realcase("pmtu_black_hole_probing0")
def test_without_probing_the_black_hole_aborts_as_the_model_says(cases: Cases) -> None:
    result = cases.get("pmtu_black_hole_probing0")
    sent = [p for p in packets(result, "a") if p.src == A_ADDR and p.payload_len > 0]
    assert {p.payload_len for p in sent if p.payload_len > 200} == {MSS}, "no segment shrank"
    t, errno = error_time(result)
    assert errno == "ETIMEDOUT"
    analysis = analyze_file(result.pcaps["a"])
    (conn,) = analysis.connections
    s = parse_settings(["tcp_retries2=5", "tcp_mtu_probing=0"], [])
    (p,) = predict_connection(conn, lambda _: s, analysis.icmp_errors, t + 1)
    assert (p.kind, p.app_error, p.within_tolerance) == ("rto-abort", "ETIMEDOUT", True)
    assert not [e for e in p.explanations if "tcp_mtu_probing" in e]


@pytest.mark.realcase("pmtu_black_hole_probing1")
def test_with_probing_the_kernel_shrinks_the_segment_and_goes_on(cases: Cases) -> None:
    result = cases.get("pmtu_black_hole_probing1")
    assert result.event("client", "error") is None
    pkts = packets(result, "a")
    sent = [p for p in pkts if p.src == A_ADDR and p.payload_len > 0]
    head = sent[0]
    assert head.payload_len == MSS
    again = [p for p in sent if p.seq == head.seq]
    shrunk = next(p for p in again if p.payload_len < MSS)
    assert shrunk.payload_len == BASE_MSS
    # Shrunk at the first timer fire past tcp_retries1's budget from the first retransmission.
    took = shrunk.time - again[1].time
    assert tcp_model_timeout(3) <= took <= 2 * tcp_model_timeout(3), took
    acked = [p.ack for p in pkts if p.src == B_ADDR and p.time > shrunk.time]
    assert any((a - head.seq) % 2**32 >= BASE_MSS for a in acked)
    # Nothing left unacknowledged at the end: no abort predicted on the whole capture.
    analysis = analyze_file(result.pcaps["a"])
    (conn,) = analysis.connections
    s = parse_settings(["tcp_retries2=5", "tcp_mtu_probing=1"], [])
    end = result.marks["captures_stopped"]
    assert not [
        p for p in predict_connection(conn, lambda _: s, analysis.icmp_errors, end) if p.kind == "rto-abort"
    ]
