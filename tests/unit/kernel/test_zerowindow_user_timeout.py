"""A zero window with TCP_USER_TIMEOUT, recorded in the netns harness on this machine's 6.18
kernel: a server that never reads, a client filling its window, every probe answered (but the
one the receiver's rate limit holds back), and still ETIMEDOUT at the time kept here: the
user timeout counts from the stall's first probe, answered or not."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "user_timeout"
# file -> (--sysctl, TCP_USER_TIMEOUT ms, the app's ETIMEDOUT, epoch s)
DATA = {
    "zero_window_ut3000.pcap": (["tcp_retries2=5"], 3000, 1796190451.6534066),
    "zero_window_ut2000.pcap": ([], 2000, 1796191332.0694962),
}


def zero_window_of(name: str, end: float | None = None, with_timeout: bool = True) -> list[KernelPrediction]:
    sysctls, ut, _ = DATA[name]
    s = parse_settings(sysctls, [f"TCP_USER_TIMEOUT={ut}"] if with_timeout else [])
    analysis = analyze_file(RECORDED / name)
    (conn,) = analysis.connections
    return predict_connection(conn, lambda _: s, analysis.icmp_errors, end)


@pytest.mark.parametrize("name", sorted(DATA))
def test_the_user_timeout_ends_an_answered_stall(name: str) -> None:
    _, ut, etimedout = DATA[name]
    (p,) = zero_window_of(name, etimedout + 0.3)
    assert (p.kind, p.side, p.app_error) == ("zerowindow-abort", "client", "ETIMEDOUT")
    assert p.predicted_s == pytest.approx(ut / 1000)
    took = etimedout - p.start_time
    assert -0.10 <= took / p.predicted_s - 1 <= 0.10 + 0.125
    assert p.observed_s is None  # the abort sends nothing, and the probes were answered
    assert p.beyond_capture is False


@pytest.mark.parametrize("name", sorted(DATA))
def test_without_it_no_end_is_due(name: str) -> None:
    """The same packets without the option: the receiver answers, so no abort is due."""
    assert zero_window_of(name, with_timeout=False) == []
