"""The zero-window probe abort, on captures recorded in the netns harness: a server that never
reads (32 KB receive buffer), a client writing until its window is zero, then a cut while the
client sends zero-window probes; its tcp_retries2 is 3 or 5.

Measured: ETIMEDOUT exactly one probe timer after the tcp_retries2-th unanswered probe (1.792 s
and 7.168 s: the RTO << tcp_retries2), counted from the last answer; answered probes before the
cut never counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "zero_window"
# file -> (tcp_retries2, the client app's ETIMEDOUT event, epoch s)
DATA = {"retries2_3.pcap": (3, 1796179874.1496074), "retries2_5.pcap": (5, 1796179951.333749)}


def predicted(
    name: str, settings: list[str], end: float | None = None, sockopts: list[str] | None = None
) -> list[KernelPrediction]:
    analysis = analyze_file(RECORDED / name)
    (conn,) = analysis.connections
    s = parse_settings(settings, sockopts or [])
    return predict_connection(conn, lambda _: s, analysis.icmp_errors, end)


@pytest.mark.parametrize("name", sorted(DATA))
def test_the_abort_follows_tcp_retries2_unanswered_probes(name: str) -> None:
    retries2, etimedout = DATA[name]
    (p,) = predicted(name, [f"tcp_retries2={retries2}"], etimedout + 1)
    assert (p.kind, p.side, p.app_error) == ("zerowindow-abort", "client", "ETIMEDOUT")
    took = etimedout - p.start_time
    assert abs(took / p.predicted_s - 1) <= 0.02, (took, p.predicted_s)
    assert p.observed_s == pytest.approx(took, abs=0.03)  # one probe timer after the last probe
    assert p.within_tolerance is True


@pytest.mark.parametrize("name", sorted(DATA))
def test_a_capture_that_ends_at_the_last_probe_shows_no_end(name: str) -> None:
    retries2, _ = DATA[name]
    (p,) = predicted(name, [f"tcp_retries2={retries2}"])
    assert p.observed_s is None and p.observed.startswith("still probing when the capture ended")


def test_another_retries2_gives_another_end() -> None:
    """retries2_5's capture read with tcp_retries2=3: the abort was due two probes sooner, and
    more probes went unanswered than that allows."""
    _, etimedout = DATA["retries2_5.pcap"]
    (p,) = predicted("retries2_5.pcap", ["tcp_retries2=3"], etimedout + 1)
    assert p.predicted_s < 0.5 * (etimedout - p.start_time)
    assert p.within_tolerance is not True
    assert any("5 probes went unanswered" in e for e in p.explanations)


def test_a_user_timeout_ends_the_stall_unless_the_count_comes_first() -> None:
    """The stall's first probe + the user timeout (test_zerowindow_user_timeout has it measured),
    or tcp_retries2 unanswered probes if those come first."""
    analysis = analyze_file(RECORDED / "retries2_3.pcap")
    (conn,) = analysis.connections
    first = conn.keepalive_frames.of("client")[0]
    s = parse_settings(["tcp_retries2=3"], ["TCP_USER_TIMEOUT=4000"])
    (p,) = [p for p in predict_connection(conn, lambda _: s) if p.kind == "zerowindow-abort"]
    assert (p.start_frame, p.predicted_s) == (first, 4.0)
    s = parse_settings(["tcp_retries2=3"], ["TCP_USER_TIMEOUT=60000"])
    (p,) = [p for p in predict_connection(conn, lambda _: s) if p.kind == "zerowindow-abort"]
    alone = parse_settings(["tcp_retries2=3"], [])
    (q,) = [p for p in predict_connection(conn, lambda _: alone) if p.kind == "zerowindow-abort"]
    assert (p.start_frame, p.predicted_s) == (q.start_frame, q.predicted_s)


def test_probe_gaps_at_a_lower_ceiling_do_not_shrink_the_rto() -> None:
    """TCP_RTO_MAX_MS=1000 and tcp_retries2=8 (recorded the same way): the probes level at
    1.024 s; shifted by 8 that gap would read as a 4 ms RTO and the end as 5 s. Measured:
    ETIMEDOUT 8.196 s after the first unanswered probe, 1.028 s after the eighth."""
    etimedout = 1796180718.313613
    name = "rto_max_1000_retries2_8.pcap"
    (p,) = predicted(name, ["tcp_retries2=8"], etimedout + 1, ["TCP_RTO_MAX_MS=1000"])
    assert p.kind == "zerowindow-abort"
    took = etimedout - p.start_time
    assert abs(took / p.predicted_s - 1) <= 0.05, (took, p.predicted_s)
    assert p.observed_s == pytest.approx(took, abs=0.03)
    assert p.within_tolerance is True


def test_a_ceiling_the_probes_show_is_taken_and_named() -> None:
    """The same capture without the setting: the probes level at 1.024 s, far short of the
    RTO << 8 (60 s) the backoff would reach; the model takes the level and says why."""
    etimedout = 1796180718.313613
    (p,) = predicted("rto_max_1000_retries2_8.pcap", ["tcp_retries2=8"], etimedout + 1)
    assert abs((etimedout - p.start_time) / p.predicted_s - 1) <= 0.05, p.predicted_s
    assert any("stopped doubling at 1.024 s" in e and "tcp_rto_max_ms=1000" in e for e in p.explanations)


@pytest.mark.parametrize("name", sorted(DATA))
def test_the_backoffs_own_end_is_no_ceiling(name: str) -> None:
    """Probes level at RTO << tcp_retries2 (1.792 s, 7.168 s): the backoff stopped, no ceiling."""
    retries2, etimedout = DATA[name]
    (p,) = predicted(name, [f"tcp_retries2={retries2}"], etimedout + 1)
    assert not any("stopped doubling" in e for e in p.explanations)


def test_a_window_that_opened_and_closed_again_restarts_the_count() -> None:
    """The server stopped (SIGSTOP) until its window closed, went on (SIGCONT) and read, then
    stopped again, and was cut off: the second run of probes starts its backoff again (0.489,
    0.927, 1.856 s after 1.88 s). Read as one run, the RTO came out as 0.061 s and the end 1.5 s
    after the first unanswered probe; measured: 4.639 s."""
    etimedout = 1796181801.8295584
    (p,) = predicted("twice_retries2_3.pcap", ["tcp_retries2=3"], etimedout + 1)
    assert abs((etimedout - p.start_time) / p.predicted_s - 1) <= 0.02, p.predicted_s
    assert p.within_tolerance is True
