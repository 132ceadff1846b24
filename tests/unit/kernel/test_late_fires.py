"""The RTO abort counted from the timer's last captured fire (`kernel.late_fires`), on captures
recorded on 6.18 (recorded/late_fires, see its README): where the fires' lateness crossed the
budget one fire sooner than the model's timer from the first retransmission alone, the model
follows the capture (it said 12.772 s where the kernel gave up 6.268 s after the first
retransmission); where both give the same fire, nothing changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.late_fires import anchor_on_last_fire
from orchestrator.kernel.predict import TOLERANCE, WHEEL_SLACK, KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.kernel.timers import rto_abort_from_stamp
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import FrameRef

LATE = Path(__file__).parent / "recorded" / "late_fires"
BUDGET = 6.2  # tcp_retries2=4
# capture, the app's ETIMEDOUT (epoch s), how late the app may have seen it (a writer: its next write)
KNIFE = ("knife_edge_retries2_4.pcap", 1796313611.531934, 0.0)
WRITER = ("knife_edge_writer_retries2_4.pcap", 1796313543.534393, 0.3)
SAME = ("same_fire_retries2_4.pcap", 1796313678.092445, 0.0)


def _rto(name: str, end: float) -> KernelPrediction:
    analysis = analyze_file(LATE / name)
    (conn,) = analysis.connections
    s = parse_settings(["tcp_retries2=4"], [])
    found = predict_connection(conn, lambda _: s, analysis.icmp_errors, end)
    (p,) = [p for p in found if p.kind == "rto-abort"]
    return p


def _stamp_only(p: KernelPrediction) -> float:
    """The model's end from the first retransmission alone, on the RTO it read there."""
    rto = float(p.basis.split("; the timer, ")[1].split(" s at that")[0])
    return rto_abort_from_stamp(BUDGET, rto)


@pytest.mark.parametrize("case", [KNIFE, WRITER], ids=["reader", "writer"])
def test_the_captured_fires_cross_the_budget_one_fire_sooner(case: tuple[str, float, float]) -> None:
    name, error, late = case
    p = _rto(name, error + 1)
    kernel = error - p.start_time
    assert _stamp_only(p) > 12.0  # from the stamp alone: 6.180 falls short, the abort at 12.77 s
    assert p.predicted_s < BUDGET * (1 + WHEEL_SLACK)  # the fire just past the budget
    assert p.predicted_s <= kernel <= p.predicted_s * (1 + TOLERANCE + WHEEL_SLACK) + late
    assert "counted from its last captured fire" in p.basis
    assert p.alternatives and p.alternatives[-1] > 12.0  # had the RTO been shorter: the next fire


def test_where_both_give_the_same_fire_nothing_changes() -> None:
    name, error, _ = SAME
    p = _rto(name, error + 1)
    assert p.predicted_s == pytest.approx(_stamp_only(p), abs=0.01)  # its RTO read to the ms
    assert "counted from its last captured fire" not in p.basis
    assert p.predicted_s <= error - p.start_time <= p.predicted_s * (1 + TOLERANCE + WHEEL_SLACK)


def _refs(times: list[float]) -> list[FrameRef]:
    return [FrameRef("x.pcap", k + 1, t) for k, t in enumerate(times)]


def test_gaps_that_are_not_the_models_timer_late_are_not_followed() -> None:
    """A gap shorter than the model's (an ICMP error undid a step, or another timer), or a
    ceiling the settings do not give: the capture is not this timer, so no anchor."""
    rto = 0.412
    late = _refs([0.0, 0.436, 1.260, 2.928])
    assert anchor_on_last_fire(late, late[0], rto, BUDGET, 120.0, 0, 0.0) is not None
    short = _refs([0.0, 0.436, 0.860, 2.528])  # the second gap 0.424, not 0.824
    assert anchor_on_last_fire(short, short[0], rto, BUDGET, 120.0, 0, 0.0) is None
    level = _refs([0.0, 0.436, 1.460, 2.484, 3.508])  # stuck at 1.024 s: a ceiling
    assert anchor_on_last_fire(level, level[0], rto, BUDGET, 120.0, 0, 0.0) is None
    past = _refs([0.0, 0.436, 1.260, 2.928, 6.3])  # a fire past the budget: the timer went on
    assert anchor_on_last_fire(past, past[0], rto, BUDGET, 120.0, 0, 0.0) is None


def test_an_expiry_the_capture_shows_as_a_retransmission_is_no_knife_edge() -> None:
    """The model's third fire (2.912 s) falls just short of the 3 s budget, so a late one might
    have ended it there; but the capture holds that fire's retransmission (2.928 s), so it did
    not: the abort is the next fire. Where the capture ends before it, it stays a knife edge."""
    analysis = analyze_file(LATE / "v6_shown_expiry_retries2_3.pcap")
    (conn,) = analysis.connections
    s = parse_settings(["tcp_retries2=3"], [])
    error = 1796315520.780146
    (p,) = [p for p in predict_connection(conn, lambda _: s, [], error + 1) if p.kind == "rto-abort"]
    assert p.alternatives == []
    assert p.predicted_s <= error - p.start_time <= p.predicted_s * (1 + TOLERANCE + WHEEL_SLACK)
    analysis = analyze_file(LATE / "v6_before_expiry_retries2_3.pcap")
    (conn,) = analysis.connections
    (p,) = [p for p in predict_connection(conn, lambda _: s, [], error + 1) if p.kind == "rto-abort"]
    assert [round(a, 1) for a in p.alternatives] == [2.9]
