"""A thin stream's linear timeouts (tcp_thin_linear_timeouts, TCP_THIN_LINEAR_TIMEOUTS) as the
RTO model reads them from the timer's gaps: how many stay level, whether a level from the first
is a lower ceiling instead, and the notes where the setting and the capture disagree."""

from __future__ import annotations

import itertools

from orchestrator.kernel.predict import WHEEL_SLACK
from orchestrator.kernel.settings import KernelSettings
from orchestrator.kernel.timer_reading import ceiling_ms, failing_locally, linear_timeouts
from orchestrator.kernel.timers import TCP_RTO_MAX, TCP_THIN_LINEAR_RETRIES
from orchestrator.tcp.connection import FrameRef

__all__ = ["ceiling_or_linear", "level_gaps", "level_words", "thin_notes"]


def level_gaps(s: KernelSettings, timer: list[FrameRef], reverting: bool) -> tuple[bool, int, list[str]]:
    """Whether the sends fail on the host (retried every 500 ms), how many gaps from the stamp
    a thin stream's linear timeouts keep level (`linear_timeouts`), and a note where that is
    not sure. Errors undoing a backoff step (`reverting`), local failures and an RTO at its
    ceiling from the first hold the gaps level too: measured on 6.18 with tcp_rto_max_ms=1000
    and a 600 ms RTT, every gap 1.024 s. Without a ceiling given, a level of 1 s or more (the
    least ceiling) could be either: linear only with the setting, and a note says so."""
    if failing_locally(timer):
        return True, 0, []
    linear = 0 if reverting else linear_timeouts(timer, s.thin_linear)
    # The level is the first gap; a single timer send shows none (the setting alone says linear).
    level = timer[1].time - timer[0].time if linear and len(timer) > 1 else 0.0
    if level >= s.rto_max / (1 + WHEEL_SLACK):
        return False, 0, []  # the ceiling's level
    if level >= 1.0 and s.rto_max == TCP_RTO_MAX:  # linear only where the setting says so
        return False, linear if s.thin_linear else 0, [ceiling_or_linear(level)]
    return False, linear, []


def ceiling_or_linear(level: float) -> str:
    return (
        f"the timer's gaps stayed level at {level:.3f} s from the first: a lower RTO ceiling "
        f"(about --sysctl tcp_rto_max_ms={ceiling_ms(level)}, or TCP_RTO_MAX_MS, kernels from 6.15; "
        "it also shortens tcp_retries2's budget) or a thin stream's linear timeouts "
        f"(tcp_thin_linear_timeouts=1: {TCP_THIN_LINEAR_RETRIES} level gaps, then doubling); the "
        "packets cannot tell which, and the model's end may be far off: give the setting"
    )


def level_words(linear: int) -> str:
    return f", level for {linear} gaps (a thin stream's linear timeouts)" if linear > 1 else ""


def thin_notes(s: KernelSettings, timer: list[FrameRef], linear: int, tlp: bool) -> list[str]:
    """What the gaps say of linear timeouts for thin streams, where the setting and the
    capture disagree or the capture alone shows them (the model follows the gaps)."""
    gaps = [b.time - a.time for a, b in itertools.pairwise(timer)]
    if linear > 1 and not s.thin_linear:
        shown = min(linear, len(gaps))
        then = ", then doubled" if len(gaps) > linear else ""
        # The kernel's count of level gaps, then the turn: the probe before them is told by
        # the count (`timer_reading._probe_by_linear_count`), not hidden by a level gap.
        counted = linear == TCP_THIN_LINEAR_RETRIES and len(gaps) > linear
        probe = (
            "; the level gap before them may also hide that the first re-send was the timer's, "
            "not a tail-loss probe"
        )
        return [
            f"linear timeouts for a thin stream: the first {shown} gaps of the timer stayed at "
            f"{min(gaps[:shown]):.3f} s without doubling{then} (tcp_thin_linear_timeouts=1, or "
            "TCP_THIN_LINEAR_TIMEOUTS on the socket; fewer than 4 segments in flight: up to "
            f"{TCP_THIN_LINEAR_RETRIES} retransmissions, then doubling, the budget unchanged), which the "
            "model follows"
            + (probe if tlp and not counted else "")
            + "; the setting (--sysctl tcp_thin_linear_timeouts=1, --sockopt TCP_THIN_LINEAR_TIMEOUTS=1) "
            "only matters where fewer gaps show"
        ]
    if s.thin_linear and not linear and len(gaps) >= 2:
        return [
            f"linear timeouts not in effect: {s.label('thin_linear')}, but the timer's gaps doubled from "
            "the first: Linux did not take the stream as thin (4 or more segments in flight, or a "
            "congestion control without a slow-start threshold, as BBR: measured on 6.18, one segment "
            "in flight doubled under BBR and kept 6 gaps level under CUBIC)"
        ]
    return []
