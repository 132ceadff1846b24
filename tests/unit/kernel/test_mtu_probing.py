"""A path-MTU black hole (netns harness, 6.18): MTU 1280 on w's link toward the server, w's ICMP
fragmentation-needed dropped, the client (tcp_retries2=5, GSO off) writing 3000 bytes every
500 ms. Its 1448-byte segments vanish; the small tail and the server's SACK for it pass.

Measured: tcp_mtu_probing=0 ends in ETIMEDOUT 13.27 s after the first retransmission (a fast
one); with 1 the kernel re-sent the head as 1024 bytes 3.15 s after it (the first timer fire
past tcp_retries1's 3 s), which was acknowledged, and the connection went on. The packets
before the shrink are the same in both, so the model may not promise the abort when probing
is on."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import UsageError
from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "pmtu_black_hole"
PROBING0 = RECORDED / "probing0_retries2_5.pcap"
ETIMEDOUT = 1796194505.702  # the client's error event with tcp_mtu_probing=0, epoch s
PROBING1_CUT = RECORDED / "probing1_cut.pcap"  # the first 14 frames: before the shrink
PROBING1_RECOVERED = RECORDED / "probing1_recovered.pcap"  # 40 frames: the 1024-byte re-send acked


def predictions(capture: Path, sysctls: list[str], end: float | None = None) -> list[KernelPrediction]:
    analysis = analyze_file(capture)
    (conn,) = analysis.connections
    s = parse_settings(sysctls, [])
    last = end if end is not None else conn.last_frame.time if conn.last_frame else 0.0
    return predict_connection(conn, lambda _: s, analysis.icmp_errors, last)


def probing_notes(p: KernelPrediction) -> list[str]:
    return [e for e in p.explanations if "tcp_mtu_probing" in e]


def test_without_probing_the_abort_is_the_kernels() -> None:
    (p,) = predictions(PROBING0, ["tcp_retries2=5"], ETIMEDOUT + 1)
    assert (p.kind, p.app_error) == ("rto-abort", "ETIMEDOUT")
    assert p.observed_s is not None and p.within_tolerance
    assert not probing_notes(p)


@pytest.mark.parametrize("mode", [1, 2])
def test_with_probing_the_abort_is_not_promised(mode: int) -> None:
    (p,) = predictions(PROBING1_CUT, ["tcp_retries2=5", f"tcp_mtu_probing={mode}"])
    assert p.kind == "rto-abort"
    (note,) = probing_notes(p)
    assert f"tcp_mtu_probing={mode}" in note and "3 s after the first retransmission" in note


def test_no_note_when_the_abort_comes_before_the_shrink() -> None:
    # tcp_retries2=2: a 1.4 s budget, short of tcp_retries1's 3 s: the kernel aborts first;
    # tcp_retries2=3: the same 3 s, so the fire that shrinks is the one that aborts.
    for retries2 in (2, 3):
        (p,) = predictions(PROBING1_CUT, [f"tcp_retries2={retries2}", "tcp_mtu_probing=1"])
        assert not probing_notes(p), retries2
    # A larger tcp_retries1 moves the shrink past tcp_retries2=5's abort too.
    (p,) = predictions(PROBING1_CUT, ["tcp_retries2=5", "tcp_retries1=6", "tcp_mtu_probing=1"])
    assert not probing_notes(p)


def test_a_user_timeout_past_tcp_retries1_leaves_room_for_the_shrink() -> None:
    analysis = analyze_file(PROBING1_CUT)
    (conn,) = analysis.connections
    for timeout_ms, noted in ((5000, True), (2500, False)):
        s = parse_settings(["tcp_mtu_probing=1"], [f"TCP_USER_TIMEOUT={timeout_ms}"])
        (p,) = predict_connection(conn, lambda _, s=s: s, analysis.icmp_errors, 0.0)
        assert bool(probing_notes(p)) is noted, timeout_ms


def test_the_kernel_with_probing_survived() -> None:
    # The smaller re-send was acknowledged: nothing is left for an abort to follow.
    assert not [
        p
        for p in predictions(PROBING1_RECOVERED, ["tcp_retries2=5", "tcp_mtu_probing=1"])
        if p.kind == "rto-abort"
    ]


def test_probing_takes_0_to_2() -> None:
    with pytest.raises(UsageError, match="tcp_mtu_probing=3"):
        parse_settings(["tcp_mtu_probing=3"], [])
