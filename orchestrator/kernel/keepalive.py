"""The keep-alive abort: probes left unanswered.

``tcp_keepalive_timer`` counts from the last segment received: after ``keepalive_time`` of
silence a probe goes out, then one every ``keepalive_intvl``; any segment received starts the
count again (an answered probe does), so earlier answered probes do not count. When
``keepalive_probes`` are out unanswered, the next run sends an RST and reports ETIMEDOUT: at
idle + probes x intvl after the last segment received. With TCP_USER_TIMEOUT it gives up at
the first run at or past the user timeout once a probe is out. The end is seen: the RST.
A peer that answers a probe with an RST (it lost the connection: rebooted, or its socket was
closed while the answer was lost) resets the connection instead: no prediction then.
"""

from __future__ import annotations

from orchestrator.kernel.predict import WHEEL_SLACK, KernelPrediction, near, ref
from orchestrator.kernel.settings import KernelSettings
from orchestrator.kernel.timers import keepalive_abort_after
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side

_LOCAL_RETRY = 0.5  # s, TCP_RESOURCE_PROBE_INTERVAL


def predict(conn: ConnectionSummary, side: Side, s: KernelSettings, end: float) -> KernelPrediction | None:
    timing = conn.keepalive
    if conn.keepalive_from != side or timing is None:
        return None  # no probes from this side (most connections): tested first, as the cheapest
    frames = conn.keepalive_frames.of(side)
    probes = conn.keepalive_probes.get(side) - conn.keepalive_in_zero_window.get(side)
    if not frames or probes <= 0:
        return None
    if timing.run_probes == 0:
        return None  # the last probe was answered: the peer is alive, no abort is due
    if conn.keepalive_reset is not None:
        return None  # the peer answered the last probe with an RST: reset (ECONNRESET), not aborted
    if conn.unseen is not None:
        return None  # the peer's answers are not in the capture: where the kernel's count starts is unknown
    run = frames[-timing.run_probes] if timing.run_probes <= len(frames) else frames[0]
    # The frame named is the one the time is: the peer's last segment (the idle start), when
    # the capture has it; else no frame, only the time (never a probe's frame with another time).
    start_frame: FrameRef | None
    if timing.run_from is not None:
        start_frame = timing.run_from_frame
        start_time = timing.run_from
        if start_frame is not None:
            got = f"the last segment it received ({ref(start_frame)})"
        else:  # the peer probed since: its probes do not restart the count (out of the window)
            got = f"the last segment it received other than the peer's own probes (at {timing.run_from:.6f})"
        what = f"{got}, before its unanswered probes (from {ref(run)} on)"
    else:
        first = frames[0]
        start_frame, start_time = None, first.time - timing.first_after_idle_s
        what = f"the start of the idle time before its first probe ({ref(first)})"
    predicted = keepalive_abort_after(
        s.keepalive_time, s.keepalive_intvl, s.keepalive_probes, user_timeout=s.user_timeout
    )
    basis = f"idle {s.label('keepalive_time')} + {s.label('keepalive_probes')} x {s.label('keepalive_intvl')}"
    if s.user_timeout:
        basis = (
            f"{s.label('user_timeout')} in place of {s.label('keepalive_probes')}: the first run of the "
            f"timer (idle {s.label('keepalive_time')}, then every {s.label('keepalive_intvl')}) at or "
            "past it, once a probe is out"
        )
    p = KernelPrediction(
        "keepalive-abort",
        side,
        predicted,
        start_time,
        what,
        basis,
        start_frame=start_frame,
        app_error="ETIMEDOUT",
    )
    p.alternatives = _knife_edge(s)
    p.beyond_capture = p.at > end
    last = frames[-1]
    rst = next((r for r in conn.rsts.of(side) if r.time >= last.time), None)
    if rst is not None:
        p.observed_s = round(rst.time - start_time, 6)
        p.observed = f"seen: the kernel's RST after the last probe ({ref(rst)})"
    else:
        p.observed = (
            f"no RST from {side} after its probes; the capture ends {end - start_time:.3f} s after "
            "the last segment it received"
        )
    p.explanations = _causes(conn, s, timing.run_probes, rst, end, p)
    for alt in p.alternatives:
        p.explanations.append(
            f"knife edge: the timer's run {alt:g} s after the last segment received falls just short of "
            f"{s.label('user_timeout')}, and the runs drift late (the timer wheel, up to 1/8): the "
            "abort may come there"
        )
    return p


def _knife_edge(s: KernelSettings) -> list[float]:
    """With TCP_USER_TIMEOUT: the timer run before the model's, if it falls short of the user
    timeout by less than the wheel's lateness. Each run re-arms from the last, so the runs drift
    late (1.024 s per 1 s at HZ=250), and the kernel measures the real idle time against the
    user timeout: measured, 1 s / 1 s with 3050 ms aborted at 3.06 s, not 4 s."""
    if not s.user_timeout or s.keepalive_intvl <= 0:
        return []
    at = keepalive_abort_after(
        s.keepalive_time, s.keepalive_intvl, s.keepalive_probes, user_timeout=s.user_timeout
    )
    before = at - s.keepalive_intvl
    if before > s.keepalive_time and before * (1 + WHEEL_SLACK) >= s.user_timeout:
        return [before]  # at least one probe is out by then (before > idle)
    return []


def _causes(
    conn: ConnectionSummary,
    s: KernelSettings,
    run: int,
    rst: FrameRef | None,
    end: float,
    p: KernelPrediction,
) -> list[str]:
    timing = conn.keepalive
    assert timing is not None
    out: list[str] = []
    idle, interval = timing.first_after_idle_s, timing.interval_s
    if timing.run_from is None and not near(idle, s.keepalive_time):
        out.append(f"the first probe came after {idle:.3f} s idle, not {s.label('keepalive_time')}")
    if (
        interval is not None
        and abs(interval - _LOCAL_RETRY) <= _LOCAL_RETRY * 0.1
        and not near(interval, s.keepalive_intvl)
    ):
        out.append(
            "probes came every 500 ms: they failed on the host itself, and Linux retries a failed probe "
            "every 500 ms (TCP_RESOURCE_PROBE_INTERVAL) without counting it, so the abort comes later"
        )
    elif interval is not None and not near(interval, s.keepalive_intvl):
        out.append(f"the unanswered probes came every {interval:.3f} s, not {s.label('keepalive_intvl')}")
    if rst is not None and run != s.keepalive_probes and not s.user_timeout:
        out.append(f"{run} unanswered probes went out before the RST, not {s.label('keepalive_probes')}")
    if rst is None and p.start_time + p.predicted_s > end:
        out.append("the capture ends before the moment the model gives for the abort")
    if rst is not None and interval is not None and timing.run_from is not None:
        first_run = rst.time - p.start_time - run * interval
        out.append(f"idle {first_run:.3f} s + {run} x {interval:.3f} s fits what the capture shows")
    return out
