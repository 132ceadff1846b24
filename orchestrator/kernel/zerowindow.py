"""The zero-window probe abort: a peer whose window is zero stops answering the sender's probes.

While the receiver answers, zero-window probes never time out (RFC 1122 4.2.2.17). Linux
(``tcp_probe_timer``) counts the probes since the last ACK (``icsk_probes_out``; any ACK resets
it) and, when the timer fires with ``tcp_retries2`` of them out, aborts (``tcp_write_err``):
nothing is sent, the app gets ETIMEDOUT. A count, not a time budget.

The probe timer is ``tcp_probe0_when``: the RTO shifted by ``icsk_backoff``, which each probe
raises until ``tcp_retries2`` (answers do not lower it), capped at the RTO's ceiling. So the
gap after the probe numbered j (1 for the first since the window closed) is
RTO << min(j, tcp_retries2) (docs/kernel-facts.md, cases 8 and 11).

TCP_USER_TIMEOUT ends a stall even while every probe is answered (``tcp_probe_timer``: the
first probe's time is kept in ``icsk_probes_tstamp``, reset only when the window opens, and the
timer is clamped to it): the abort is the first probe of the stall + the user timeout, or the
count's end if that comes first. Measured on 6.18, answered probes: 3000 ms -> ETIMEDOUT 3.03 s
after the first probe, 2000 ms -> 2.008 s (tcp_retries2=15).

Not modelled, so no prediction is made: an orphaned socket (``tcp_orphan_retries``), and a
prober whose probes were not all zero-window probes (keep-alive then).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from orchestrator.kernel.predict import WHEEL_SLACK, KernelPrediction, ref
from orchestrator.kernel.settings import KernelSettings
from orchestrator.kernel.timer_reading import ceiling_ms, last_level
from orchestrator.kernel.timers import TCP_RTO_MAX
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side

# tcp_invalid_ratelimit: a receiver answers out-of-window segments (the probes) at most this
# often, so a lone unanswered probe this soon after the one before is no sign of loss.
_RATE_LIMIT = 0.5  # s


def predict(conn: ConnectionSummary, side: Side, s: KernelSettings, end: float) -> KernelPrediction | None:
    if conn.keepalive_from != side or conn.keepalive is None:
        return None  # no probes from this side (`_stall_probes`'s first test; most connections)
    if not s.user_timeout:
        return _by_count(conn, side, s, end)
    by_time = _by_user_timeout(conn, side, s, end)
    by_count = _by_count(conn, side, replace(s, user_timeout=None), end)
    if by_count is not None and (by_time is None or by_count.at < by_time.at):
        return by_count
    return by_time


def _by_user_timeout(
    conn: ConnectionSummary, side: Side, s: KernelSettings, end: float
) -> KernelPrediction | None:
    """The user timeout's end: the first zero-window probe of the stall + the user timeout."""
    frames = _stall_probes(conn, side)
    if not frames or not s.user_timeout:
        return None
    ep = _episode([b.time - a.time for a, b in itertools.pairwise(frames)])
    start = frames[ep]
    p = KernelPrediction(
        "zerowindow-abort",
        side,
        float(s.user_timeout),
        start.time,
        f"the first zero-window probe of the stall ({ref(start)})",
        f"{s.label('user_timeout')}: a zero-window stall ends at its first probe + the user timeout, "
        "answered or not (tcp_probe_timer's icsk_probes_tstamp, reset only when the window opens)",
        start_frame=start,
        app_error="ETIMEDOUT",
    )
    p.beyond_capture = p.at > end
    late = [f for f in frames if f.time > p.at + s.user_timeout * (0.1 + WHEEL_SLACK)]
    if late:
        p.observed = f"the sender still probed after it ({ref(late[0])}): the user timeout did not end it"
        p.explanations.append(
            f"a zero-window probe {late[0].time - start.time:.3f} s after the first: not the "
            f"{s.label('user_timeout')} the model was given"
        )
    else:
        ends = end - start.time
        p.observed = f"the abort sends nothing: the capture ends {ends:.3f} s after the first probe"
    return p


def _stall_probes(conn: ConnectionSummary, side: Side) -> list[FrameRef]:
    """`side`'s captured probes, if they are a zero-window stall still open at the capture's end
    (every probe sent into a zero window, the connection never closed); else none."""
    frames = conn.keepalive_frames.of(side)
    if (
        conn.keepalive_from != side
        or conn.keepalive is None
        or conn.close != "none"
        or conn.keepalive_in_zero_window.get(side) != conn.keepalive_probes.get(side)
    ):
        return []
    return frames


def _by_count(conn: ConnectionSummary, side: Side, s: KernelSettings, end: float) -> KernelPrediction | None:
    frames = _stall_probes(conn, side)
    timing = conn.keepalive
    if not frames or timing is None:
        return None
    probes = conn.keepalive_probes.get(side)
    run = timing.run_probes
    if run == 0:
        return None  # the last probe was answered: the receiver is alive, no abort is due
    first = probes - run + 1  # the run's first probe, numbered from the first since the window closed
    if first > len(frames):
        return None  # past the probes kept as evidence
    start = frames[first - 1]
    if run == 1 and first > 1 and start.time - frames[first - 2].time < _RATE_LIMIT:
        return None  # the answer was held back by the receiver's rate limit, not lost
    spaced = [b.time - a.time for a, b in itertools.pairwise(frames)]
    ep = _episode(spaced)  # the window may have opened and closed again: the backoff restarted
    if first - 1 < ep:
        return None  # a run across the window's opening: not one run of the probe timer
    idle = timing.first_after_idle_s if ep == 0 else 0.0  # that wait is the first episode's
    rto, seen = _timer(idle, spaced[ep:], s)
    cap = seen if seen is not None else s.rto_max
    gaps = [_gap(rto, j, s, cap) for j in range(first - ep, first - ep + s.retries2)]
    basis = (
        f"{s.label('retries2')}: the abort at the probe timer's expiry with that many probes unanswered; "
        f"the timer, {rto:.3f} s doubling per probe up to {_gap(rto, s.retries2, s, cap):.3f} s "
        f"(RTO << min(probes, tcp_retries2), capped at the RTO's ceiling)"
    )
    p = KernelPrediction(
        "zerowindow-abort",
        side,
        round(sum(gaps), 6),
        start.time,
        f"its first unanswered zero-window probe ({ref(start)})",
        basis,
        start_frame=start,
        app_error="ETIMEDOUT",
    )
    p.beyond_capture = p.at > end
    if seen is not None:
        p.explanations.append(
            f"the probes stopped doubling at {seen:.3f} s apart, short of the RTO << {s.label('retries2')} "
            f"({rto * (1 << s.retries2):.3f} s): the RTO has a lower ceiling than 120 s (tcp_rto_max_ms, or "
            "TCP_RTO_MAX_MS on the socket, kernels from 6.15); the model takes that level, give the setting "
            f"(about --sysctl tcp_rto_max_ms={ceiling_ms(seen)}) to say it"
        )
    last = frames[-1] if probes <= len(frames) else None
    if last is not None and run > s.retries2:
        p.explanations.append(f"{run} probes went unanswered, more than {s.label('retries2')} allows")
    if last is not None and run >= s.retries2:
        # The timer never shortens while it probes (the backoff only grows): the next expiry is
        # at least the last gap the capture shows, if that is longer than the model's.
        wait = max(_gap(rto, probes - ep, s, cap), spaced[-1] if spaced else 0.0)
        at = last.time + wait
        if at <= end:
            p.observed_s = round(at - start.time, 6)
            p.observed = (
                f"inferred: {run} unanswered probes, then nothing: the kernel gave up when the probe "
                f"timer fired next, {wait:.3f} s after the last ({ref(last)})"
            )
            return p
    p.observed = (
        f"still probing when the capture ended, {end - start.time:.3f} s after the first unanswered "
        f"probe ({run} unanswered so far)"
    )
    return p


def _timer(idle: float, gaps: list[float], s: KernelSettings) -> tuple[float, float | None]:
    """The RTO the probe timer shifts, and a ceiling the probes show where none was given.

    The RTO is the least of (first probe's wait, gap_j >> min(j, retries2)), as the timer wheel
    only fires late. Gaps at a ceiling (the setting's, or the level the last gaps stay at;
    within the wheel's lateness of it) are left out: capped, they no longer grow with j, and
    shifted they would read as an RTO far under the real one (1.024 s >> 8 is 4 ms, measured
    with 1 s). A level of 1 s or more (the least ceiling the kernel takes) short of RTO <<
    retries2 is a lower ceiling; at RTO << retries2 it is the backoff's own end."""
    level = last_level(gaps)
    capped = min(s.rto_max, level or s.rto_max) / (1 + WHEEL_SLACK)
    shifted = [g / (1 << min(j, s.retries2)) for j, g in enumerate(gaps, start=1) if 0 < g < capped]
    rto = min([idle, *shifted]) if idle > 0 else min(shifted, default=0.2)
    natural = rto * (1 << s.retries2)
    given = s.rto_max != TCP_RTO_MAX
    seen = level if level and not given and 1.0 <= level < natural / (1 + WHEEL_SLACK) else None
    return rto, seen


def _episode(gaps: list[float]) -> int:
    """Where the last run of the probe timer starts (an index into the probes): after the last
    gap that falls well under the one before it. Within a run the gaps only grow, or stay at
    their cap (late by up to 1/8); a shorter one means the window opened and the backoff started
    again (measured: 1.88 s, then 0.489 s, 0.927 s, 1.856 s)."""
    return max((i for i in range(1, len(gaps)) if gaps[i] < 0.6 * gaps[i - 1]), default=0)


def _gap(rto: float, j: int, s: KernelSettings, cap: float) -> float:
    """The probe timer after the probe numbered j, under the ceiling `cap`."""
    return min(rto * (1 << min(j, s.retries2)), cap)
