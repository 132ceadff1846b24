"""The `keepalive_timing` check: probes answered or not, and the timer wheel's lateness."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import KeepaliveTiming, SideCounts
from orchestrator.verdict.expectations import check_keepalive_timing
from tests.unit.verdict.test_socket_reconcile import bare

TOL = 0.10


def judged(first: float, interval: float | None, run: int, idle: float = 2.0, intvl: float = 1.0) -> bool:
    timing = KeepaliveTiming(first_after_idle_s=first, interval_s=interval, run_probes=run)
    conn = dataclasses.replace(bare("10.0.0.2:40000", "10.0.0.1:7000"), keepalive=timing)
    return check_keepalive_timing(conn, idle, intvl, TOL, None).passed


@pytest.mark.parametrize(
    ("first", "interval", "run"),
    [
        (2.03, 1.01, 3),  # idle, then an unanswered run every intvl
        (2.03, 2.016, 0),  # every probe answered: each answer starts the idle time again
        (2.03, None, 1),  # a single probe
        (2.24, 1.10, 3),  # late by the timer wheel (up to 1/8) and within the tolerance
    ],
)
def test_kernel_timings_pass(first: float, interval: float | None, run: int) -> None:
    assert judged(first, interval, run)


@pytest.mark.parametrize(
    ("first", "interval", "run"),
    [
        (1.0, 1.0, 3),  # probing before the idle time
        (2.03, 2.0, 3),  # an unanswered run at the idle time, not intvl
        (2.03, 1.0, 0),  # answered probes intvl apart: the answers did not restart the idle time
        (2.5, 1.0, 3),  # later than the wheel and the tolerance allow
        (1.75, 1.0, 3),  # earlier than the tolerance allows
    ],
)
def test_anything_else_fails(first: float, interval: float | None, run: int) -> None:
    assert not judged(first, interval, run)


def test_answered_with_intvl_longer_than_idle_is_intvl_apart() -> None:
    # The timer fires intvl after each probe; by then the idle time has passed: probe again.
    assert judged(1.02, 3.05, 0, idle=1.0, intvl=3.0)
    assert not judged(1.02, 1.02, 0, idle=1.0, intvl=3.0)


def test_expected_says_which_spacing() -> None:
    timing = KeepaliveTiming(first_after_idle_s=2.03, interval_s=2.016, run_probes=0)
    conn = dataclasses.replace(bare("10.0.0.2:40000", "10.0.0.1:7000"), keepalive=timing)
    check = check_keepalive_timing(conn, 2.0, 1.0, TOL, None)
    assert "every 2s while answered" in check.expected


RECORDED = Path(__file__).parent / "recorded" / "keepalive_netns" / "a.pcap"


def test_a_real_kernels_keepalive_passes_with_its_settings_only() -> None:
    conns = analyze_file(RECORDED).connections
    probed = [c for c in conns if c.keepalive is not None]
    answered = [c for c in probed if c.keepalive_probes.client > 1]
    late = [c for c in probed if c.keepalive_probes.client == 1]
    assert len(answered) == 1 and len(late) == 11
    (kept,) = answered
    assert check_keepalive_timing(kept, 2.0, 1.0, TOL, None).passed
    assert not check_keepalive_timing(kept, 1.0, 1.0, TOL, None).passed  # its first probe came at 2 s
    assert not check_keepalive_timing(kept, 2.0, 3.0, TOL, None).passed  # answered: max(2, 3) apart
    for c in late:  # up to 11.5% late, as the timer wheel may
        assert check_keepalive_timing(c, 17.0, 1.0, TOL, None).passed, c.keepalive
        assert not check_keepalive_timing(c, 12.0, 1.0, TOL, None).passed, c.keepalive
        assert not check_keepalive_timing(c, 22.0, 1.0, TOL, None).passed, c.keepalive
    worst = max(c.keepalive.first_after_idle_s for c in late if c.keepalive is not None)
    assert worst > 17.0 * (1 + TOL)  # the old symmetric tolerance would have failed this one


def test_an_outage_that_healed_mixes_both_spacings() -> None:
    """Probes 1 s apart while unanswered, then answered ones 2 s apart: any median of the two."""
    timing = KeepaliveTiming(first_after_idle_s=2.03, interval_s=1.5, run_probes=0)
    base = dataclasses.replace(
        bare("10.0.0.2:40000", "10.0.0.1:7000"), keepalive=timing, keepalive_from="client"
    )
    mixed = dataclasses.replace(
        base, keepalive_probes=SideCounts(client=4), keepalive_answered=SideCounts(client=2)
    )
    assert check_keepalive_timing(mixed, 2.0, 1.0, TOL, None).passed
    every = dataclasses.replace(
        base, keepalive_probes=SideCounts(client=4), keepalive_answered=SideCounts(client=4)
    )
    assert not check_keepalive_timing(every, 2.0, 1.0, TOL, None).passed  # all answered: 2 s apart
    far = dataclasses.replace(mixed, keepalive=dataclasses.replace(timing, interval_s=3.0))
    assert not check_keepalive_timing(far, 2.0, 1.0, TOL, None).passed
