"""A user timeout that ends the retransmissions (recorded in netns, kernel 6.18; README there):
the kernel checks it when the timer fires, clamped to what is left of it, and sends nothing, so
the capture bounds the end (after the last retransmission, before the expiry that would have
sent another, or the capture's end) but cannot show it. The model's end is judged against those
bounds; the clamp's own time is not given as the observed end (it matched the model by
construction, deviation 0 whatever the kernel did). The apps' ETIMEDOUT, waiting in select(), is
the real witness."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.kernel.predict import (
    KernelPrediction,
    predict_connection,
    prediction_from_json,
    prediction_json,
)
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

HERE = Path(__file__).parent / "recorded" / "user_timeout_rto"
ROWS = re.findall(r"\| `(\w+)\.pcap` \| (\d+) \| (\d+) \| ([\d.]+) \|", (HERE / "README.md").read_text())


def _rto(name: str, user_timeout_ms: int, retries2: int) -> KernelPrediction:
    analysis = analyze_file(HERE / f"{name}.pcap")
    s = parse_settings([f"tcp_retries2={retries2}"], [f"TCP_USER_TIMEOUT={user_timeout_ms}"])
    conn = analysis.connections[0]
    end = max(c.last_frame.time for c in analysis.connections if c.last_frame)
    (p,) = [p for p in predict_connection(conn, lambda _: s, [], end) if p.kind == "rto-abort"]
    return p


def test_the_recordings_are_here() -> None:
    assert len(ROWS) == 4


@pytest.mark.parametrize(("name", "ut", "retries2", "etimedout"), ROWS)
def test_the_packets_bound_the_end_and_the_app_witnesses_it(
    name: str, ut: str, retries2: str, etimedout: str
) -> None:
    p = _rto(name, int(ut), int(retries2))
    kernel = float(etimedout) - p.start_time
    assert p.predicted_s == int(ut) / 1000
    assert abs(kernel / p.predicted_s - 1) <= 0.1 + 0.125  # the app's error: within the tolerance
    assert p.observed_s is None and p.deviation is None
    assert p.observed_window is not None
    lo, hi = p.observed_window
    assert lo < kernel <= hi  # the kernel's end is in the bounds
    assert p.within_tolerance is True
    assert "cannot show" in p.observed
    assert prediction_from_json(prediction_json(p)).observed_window == p.observed_window


@pytest.mark.parametrize(("name", "ut", "retries2", "etimedout"), ROWS)
def test_a_user_timeout_the_packets_belie_is_outside(
    name: str, ut: str, retries2: str, etimedout: str
) -> None:
    """Told 1 s: the capture has retransmissions after it, so the model's end is outside."""
    p = _rto(name, 1000, int(retries2))
    assert p.observed_window is not None and p.observed_window[0] > 1.0
    assert p.within_tolerance is False


def test_a_user_timeout_past_the_next_expiry_is_judged_on_the_expiry() -> None:
    """Told 8 s where the kernel ended at 5.2 s: the timer's next expiry comes before the clamp,
    so the capture's silence after it is the observed end, and the model's 8 s is outside."""
    p = _rto("ut5000_r15", 8000, 15)
    assert p.observed_window is None and p.observed_s is not None
    assert p.within_tolerance is False


def test_a_capture_that_ends_with_the_last_retransmission_bounds_nothing() -> None:
    analysis = analyze_file(HERE / "ut3000_r15.pcap")
    conn = analysis.connections[0]
    s = parse_settings([], ["TCP_USER_TIMEOUT=1000"])  # the clamp before the last retransmission
    last = conn.retransmission_frames.client[-1].time
    (p,) = [p for p in predict_connection(conn, lambda _: s, [], last) if p.kind == "rto-abort"]
    assert p.observed_window is None and p.observed_s is None
    assert "cannot show whether more followed" in p.observed
