"""A lower RTO ceiling (tcp_rto_max_ms, kernels from 6.15), on captures recorded in the netns
harness on this machine's 6.18 kernel: a client sending every 200 ms, a cut, ETIMEDOUT.

The ceiling caps the timer's doubling and shortens tcp_retries2's budget (its linear steps are
the ceiling's). Without the setting the model is minutes off, and says why from the packets;
with it, the kernel's real end is within the tolerance."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import KernelSettings, parse_settings
from orchestrator.kernel.timers import rto_abort_after, syn_schedule
from orchestrator.tcp.analysis import analyze_file
from orchestrator.verdict.expectations import check_backoff

RECORDED = Path(__file__).parent / "recorded" / "rto_max"
# file -> (tcp_retries2, tcp_rto_max_ms, the client app's ETIMEDOUT event, epoch s)
DATA = {
    "rto_max_1000_retries2_6.pcap": (6, 1000, 1796178809.5098126),
    "rto_max_2000_retries2_8.pcap": (8, 2000, 1796178923.07757),
}
SYN = "rto_max_1000_syn_retries_6.pcap"
SYN_ETIMEDOUT = 1796178863.9736285


def rto_of(name: str, s: KernelSettings, end: float) -> KernelPrediction:
    analysis = analyze_file(RECORDED / name)
    (conn,) = analysis.connections
    found = predict_connection(conn, lambda _: s, analysis.icmp_errors, end)
    (p,) = [p for p in found if p.kind == "rto-abort"]
    return p


def test_the_budget_takes_the_ceiling_for_its_linear_steps() -> None:
    assert rto_abort_after(6) == pytest.approx(25.4)
    assert rto_abort_after(6, rto_max=1.0) == pytest.approx(5.4)  # 7 x 0.2 s, then 4 x 1 s
    assert rto_abort_after(8, rto_max=2.0) == pytest.approx(13.0)  # 15 x 0.2 s, then 5 x 2 s
    assert rto_abort_after(15, rto_max=120.0) == pytest.approx(924.6)


def test_a_syn_timer_capped_at_one_second() -> None:
    """Measured: SYNs 1 s apart, 6 retransmissions, ETIMEDOUT 7.17 s after the first."""
    sent, abort = syn_schedule(6, linear_timeouts=4, rto_max=1.0)
    assert sent == pytest.approx([1, 2, 3, 4, 5, 6])
    assert abort == pytest.approx(7.0)
    assert syn_schedule(6, linear_timeouts=4)[1] == pytest.approx(131.0)


@pytest.mark.parametrize("name", sorted(DATA))
def test_with_the_ceiling_the_end_is_the_kernels(name: str) -> None:
    retries2, rto_max_ms, etimedout = DATA[name]
    s = parse_settings([f"tcp_retries2={retries2}", f"net.ipv4.tcp_rto_max_ms={rto_max_ms}"], [])
    p = rto_of(name, s, etimedout + 5)
    took = etimedout - p.start_time
    assert -0.10 <= took / p.predicted_s - 1 <= 0.10 + 0.125
    assert p.within_tolerance is True
    assert f"tcp_rto_max_ms={rto_max_ms}" in p.basis
    assert not any("stopped doubling" in e for e in p.explanations)


@pytest.mark.parametrize("name", sorted(DATA))
def test_without_it_the_model_is_off_and_the_packets_say_why(name: str) -> None:
    retries2, rto_max_ms, etimedout = DATA[name]
    p = rto_of(name, parse_settings([f"tcp_retries2={retries2}"], []), etimedout + 5)
    assert p.predicted_s > 3 * (etimedout - p.start_time)
    assert p.within_tolerance is False
    (hint,) = [e for e in p.explanations if "stopped doubling" in e]
    assert f"tcp_rto_max_ms={rto_max_ms})" in hint
    assert not any("fits what the capture shows" in e for e in p.explanations)


def test_no_ceiling_is_claimed_for_a_plain_backoff() -> None:
    """The late-capture recording: a default ceiling, gaps doubling to the end."""
    path = Path(__file__).parent / "recorded" / "late_capture" / "a_full.pcap"
    analysis = analyze_file(path)
    (conn,) = analysis.connections
    s = parse_settings(["tcp_retries2=5"], [])
    found = predict_connection(conn, lambda _: s, analysis.icmp_errors, conn.last_frame.time + 30)
    assert found
    assert not any("stopped doubling" in e for p in found for e in p.explanations)


def test_the_socket_option_sets_it_too() -> None:
    s = parse_settings([], ["TCP_RTO_MAX_MS=2000"])
    assert s.rto_max == 2.0
    assert s.label("rto_max") == "TCP_RTO_MAX_MS=2s"
    assert KernelSettings().label("rto_max") == "tcp_rto_max_ms=120000 (kernel default)"


@pytest.mark.parametrize("given", ["tcp_rto_max_ms=500", "tcp_rto_max_ms=130000"])
def test_a_ceiling_the_kernel_refuses_is_refused(given: str) -> None:
    from orchestrator.errors import UsageError  # noqa: PLC0415

    with pytest.raises(UsageError, match="1 s to 120 s"):
        parse_settings([given], [])


def test_the_backoff_check_knows_the_ceiling() -> None:
    """Gaps 0.42, 0.83, then 1.02 s: doubling up to a 1 s ceiling, not a failed doubling."""
    conn = analyze_file(RECORDED / "rto_max_1000_retries2_6.pcap").connections[0]
    assert check_backoff(conn, 0.2, [], None, rto_max=1.0).passed
    assert not check_backoff(conn, 0.2, [], None).passed


def test_a_connect_with_the_ceiling() -> None:
    analysis = analyze_file(RECORDED / SYN)
    (conn,) = analysis.connections
    s = parse_settings(["tcp_syn_retries=6", "tcp_rto_max_ms=1000"], [])
    (p,) = predict_connection(conn, lambda _: s, analysis.icmp_errors, SYN_ETIMEDOUT + 5)
    assert p.kind == "connect-timeout"
    assert p.predicted_s == pytest.approx(7.0)
    assert abs((SYN_ETIMEDOUT - p.start_time) / p.predicted_s - 1) <= 0.05
    assert p.within_tolerance is True
    default = parse_settings(["tcp_syn_retries=6"], [])
    (q,) = predict_connection(conn, lambda _: default, analysis.icmp_errors, SYN_ETIMEDOUT + 5)
    assert q.predicted_s == pytest.approx(131.0)
