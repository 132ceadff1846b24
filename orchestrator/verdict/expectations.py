"""One function per expectation: compare what the packets and events show with what was expected.

Every observation comes from the capture analysis or the agents' events; the expectation only
decides PASS or FAIL.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from orchestrator.kernel.predict import WHEEL_SLACK, KernelPrediction, near, under
from orchestrator.kernel.timers import TCP_RTO_MAX, TCP_THIN_LINEAR_RETRIES, fast_retransmissions
from orchestrator.run.records import AgentEvent
from orchestrator.scenario.expect import AppExpect, Side
from orchestrator.scenario.units import CountRange
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, SideCounts, SideFrames
from orchestrator.verdict.outcome import AppOutcome

EVIDENCE_FRAMES = 6


@dataclass
class Check:
    name: str
    passed: bool
    expected: str
    observed: str
    evidence: list[str] = field(default_factory=list)


def ref(frame: FrameRef | None, t0: float | None) -> str:
    if frame is None:
        return "-"
    at = f" +{frame.time - t0:.3f}s" if t0 is not None else ""
    return f"{frame.file}#{frame.frame}{at}"


def at(t: float, t0: float | None) -> str:
    """A wall-clock time on the run's clock: +1.234s after traffic started."""
    return f"+{t - t0:.3f}s" if t0 is not None else f"{t:.3f}"


def refs(frames: list[FrameRef], t0: float | None) -> list[str]:
    shown = [ref(f, t0) for f in frames[:EVIDENCE_FRAMES]]
    if len(frames) > EVIDENCE_FRAMES:
        shown.append(f"... {len(frames) - EVIDENCE_FRAMES} more")
    return shown


def check_value(name: str, expected: str, observed: str | None, evidence: list[str]) -> Check:
    shown = observed if observed is not None else "none"
    return Check(name, shown == expected, expected, shown, evidence)


def check_counts(
    name: str, wanted: dict[Side, CountRange], counts: SideCounts, frames: SideFrames, t0: float | None
) -> list[Check]:
    out = []
    for side, bound in wanted.items():
        n = counts.get(side)
        out.append(Check(f"{name}.{side}", bound.contains(n), str(bound), str(n), refs(frames.of(side), t0)))
    return out


def check_count(name: str, bound: CountRange, frames: list[FrameRef], t0: float | None) -> Check:
    """How many of something there were (each of `frames`), against a range."""
    return Check(name, bound.contains(len(frames)), str(bound), str(len(frames)), refs(frames, t0))


def check_close_evidence(conn: ConnectionSummary, t0: float | None) -> list[str]:
    fins = sorted([*conn.fins.client, *conn.fins.server], key=lambda f: f.time)
    rsts = sorted([*conn.rsts.client, *conn.rsts.server], key=lambda f: f.time)
    evidence = [f"FIN {ref(f, t0)}" for f in fins[:4]] + [f"RST {ref(f, t0)}" for f in rsts[:4]]
    return evidence or [f"no FIN or RST; last frame {ref(conn.last_frame, t0)}"]


def check_backoff(
    conn: ConnectionSummary,
    tolerance: float,
    model_gaps: list[float],
    t0: float | None,
    rto_max: float = TCP_RTO_MAX,
    thin_linear: str | None = None,
) -> Check:
    """Each gap between retransmissions of one segment about twice the one before (RTO doubling),
    or the RTO ceiling (`rto_max`: 120 s, or the sender's tcp_rto_max_ms) once twice the gap
    before would pass it. With `thin_linear` (the sender's setting that turns a thin stream's
    linear timeouts on, as it reads: "tcp_thin_linear_timeouts=1"), up to
    TCP_THIN_LINEAR_RETRIES level gaps first, then doubling from that level, is the kernel's
    backoff too; without it, gaps that fit it fail and say so.

    The first gap (original send to first retransmission) is left out of the ratios: it may be a
    tail-loss probe at about 2 x SRTT rather than a full RTO. One ratio is enough: a small
    tcp_retries2 or a short run may stop after three retransmissions (tcp_retries2=3 aborts at the
    third or fourth timer expiry, whichever is the first past its budget), and one doubling on
    the wire is the kernel's backoff; with fewer there is nothing to compare. Leading gaps of
    fast retransmissions (an RTT apart, before the timer's first fire) are left out too: the
    timer doubles from the last of them (`timers.fast_retransmissions`).
    """
    gaps = conn.backoff_gaps_s
    observed = ", ".join(f"{g:.3f}" for g in gaps) or "no retransmissions"
    timer = gaps[1:]
    timer = timer[fast_retransmissions(timer) :]
    pairs = [(a, b) for a, b in itertools.pairwise(timer) if a > 0]
    ok = bool(pairs) and _doubling(pairs, tolerance, rto_max)
    ratios = ", ".join(f"{b / a:.2f}" for a, b in pairs)
    evidence = [f"ratios {ratios}" if pairs else "ratios -: fewer than 3 retransmissions of one segment"]
    expected = f"doubling gaps (ratio 2 ±{tolerance:.0%})"
    if thin_linear:
        expected += f", after up to {TCP_THIN_LINEAR_RETRIES} level ones ({thin_linear})"
    level = 0 if ok else _linear_run(timer, tolerance, rto_max)
    if level:
        syn = conn.syn is not None and conn.backoff_frames[:1] == [conn.syn]
        ok = bool(thin_linear) and not syn
        evidence.append(_linear_words(timer, level, thin_linear, syn))
    if model_gaps:
        evidence.append("model gaps " + ", ".join(f"{g:g}" for g in model_gaps[: len(gaps)]))
    evidence += refs(conn.backoff_frames, t0)
    return Check("backoff", ok, expected, f"gaps {observed} s", evidence)


def _doubling(pairs: list[tuple[float, float]], tolerance: float, rto_max: float) -> bool:
    return all(abs(b / min(2 * a, rto_max) - 1) <= tolerance for a, b in pairs)


def _linear_run(timer: list[float], tolerance: float, rto_max: float) -> int:
    """How many of the timer's leading gaps stay at the first one's level (2 at least, at most
    the kernel's TCP_THIN_LINEAR_RETRIES), where the gaps after them double from it (or none
    follow): a thin stream's linear timeouts. 0 where the gaps do not fit them."""
    if len(timer) < 2 or timer[0] <= 0:
        return 0
    n = 1
    while n < len(timer) and abs(timer[n] / timer[0] - 1) <= tolerance:
        n += 1
    after = [(a, b) for a, b in itertools.pairwise(timer[n - 1 :]) if a > 0]
    fits = 2 <= n <= TCP_THIN_LINEAR_RETRIES and _doubling(after, tolerance, rto_max)
    return n if fits else 0


def _linear_words(timer: list[float], level: int, thin_linear: str | None, syn: bool) -> str:
    """What gaps that fit a thin stream's linear timeouts say, with the setting or without."""
    then = "then doubled" if level < len(timer) else "to the last one"
    seen = f"the first {level} gaps of the timer stayed level at {timer[0]:.3f} s, {then}"
    if syn:
        return (
            f"{seen}: the segment is a SYN, whose first retransmissions stay 1 s apart with "
            "tcp_syn_linear_timeouts (kernels from 6.5, default 4), not a thin stream's linear timeouts"
        )
    if thin_linear:
        return f"{seen}: a thin stream's linear timeouts ({thin_linear}), the kernel's backoff there"
    ceiling = (
        "; a level of a second or more may also be a lower RTO ceiling (tcp_rto_max_ms, TCP_RTO_MAX_MS)"
        if timer[0] >= 1.0
        else ""
    )
    return (
        f"{seen}: a thin stream's linear timeouts (tcp_thin_linear_timeouts=1, or "
        "TCP_THIN_LINEAR_TIMEOUTS=1 on the socket: fewer than 4 segments in flight keep up to "
        f"{TCP_THIN_LINEAR_RETRIES} RTOs level, then double), which the sender's settings do not "
        f"turn on: not doubling as expected; give the setting if the program sets it{ceiling}"
    )


def check_keepalive_timing(
    conn: ConnectionSummary, idle: float, intvl: float, tolerance: float, t0: float | None
) -> Check:
    """The first probe `idle` after the peer's last segment, then one every `intvl` while
    unanswered. While the peer answers, each answer starts the idle time again, so answered
    probes come max(idle, intvl) apart (`tcp_keepalive_timer`). Timers fire late by up to 1/8
    (the timer wheel), so later is allowed that much more."""
    timing = conn.keepalive
    answered = timing is not None and not timing.run_probes and timing.interval_s is not None
    spacing = max(idle, intvl) if answered else intvl
    then = f"every {spacing:g}s while answered" if answered else f"every {intvl:g}s"
    expected = f"first probe {idle:g}s after idle, then {then} (±{tolerance:.0%}, +1/8 for the timer wheel)"
    if timing is None:
        return Check("keepalive_timing", False, expected, "no keepalive probes")
    ok = near(timing.first_after_idle_s, idle, tolerance) and (
        timing.interval_s is None
        or near(timing.interval_s, spacing, tolerance)
        or (
            answered
            and _mixed(conn)
            and timing.interval_s >= intvl * (1 - tolerance)
            and under(timing.interval_s, spacing, tolerance)
        )
    )
    interval = "-" if timing.interval_s is None else f"{timing.interval_s:.3f}s"
    observed = f"first after {timing.first_after_idle_s:.3f}s, interval {interval}"
    frames = [*conn.keepalive_frames.client, *conn.keepalive_frames.server]
    return Check("keepalive_timing", ok, expected, observed, refs(sorted(frames, key=lambda f: f.time), t0))


def _mixed(conn: ConnectionSummary) -> bool:
    """The last probe answered, some before it not (an outage that healed): the median gap
    mixes intvl (unanswered) and max(idle, intvl) (answered)."""
    side = conn.keepalive_from or "client"
    return conn.keepalive_answered.get(side) < conn.keepalive_probes.get(side)


def check_app(
    host: str,
    want: AppExpect,
    seen: AppOutcome,
    prediction: KernelPrediction | None,
    tolerance: float,
    t0: float | None,
) -> list[Check]:
    evidence = [f"{host}.events.jsonl: {seen.detail}"] if seen.detail else []
    out = [Check(f"apps.{host}.sees", seen.sees == want.sees, want.sees or "-", seen.label(t0), evidence)]
    if want.at is None:
        return out
    name = f"apps.{host}.at"
    if seen.t is None:
        out.append(Check(name, False, str(want.at), "the app saw nothing"))
    elif want.at == "predicted":
        out.append(_check_predicted(name, seen, prediction, tolerance))
    elif t0 is not None:
        took = seen.t - t0
        out.append(
            Check(name, _within(took, want.at, tolerance), f"{want.at:g}s ±{tolerance:.0%}", f"{took:.3f}s")
        )
    return out


def _check_predicted(
    name: str, seen: AppOutcome, prediction: KernelPrediction | None, tolerance: float
) -> Check:
    """The app's end against the kernel model's, counted from the same moment: within the
    tolerance early, the tolerance plus the timer wheel's 1/8 late; an end "at once" within 50 ms."""
    assert seen.t is not None
    if prediction is None:
        return Check(name, False, "the kernel model's time", "no prediction: no unacked data, no keepalive")
    p = prediction
    took = seen.t - p.start_time
    evidence = [p.describe()]
    if p.predicted_s <= 0:
        return Check(name, abs(took) <= 0.05, f"at once ({p.kind})", f"{took * 1000:.1f} ms after", evidence)
    if p.upper_bound:  # the budget may have started before the capture: any time up to it
        late = tolerance + WHEEL_SLACK
        expected = f"at most {p.predicted_s:.3f}s +{late:.1%} ({p.kind}; its start may precede the capture)"
        return Check(name, under(took, p.predicted_s, tolerance), expected, f"{took:.3f}s", evidence)
    ends = [p.predicted_s, *p.alternatives]
    best = min(ends, key=lambda e: abs(took - e))
    off = (took - best) / best
    expected = f"{p.predicted_s:.3f}s -{tolerance:.0%}/+{tolerance + WHEEL_SLACK:.1%} ({p.kind})"
    if p.alternatives:
        expected += " or " + ", ".join(f"{a:.3f}s" for a in p.alternatives)
    ok = -tolerance <= off <= tolerance + WHEEL_SLACK
    return Check(name, ok, expected, f"{took:.3f}s ({off:+.1%})", evidence)


def _within(observed: float, expected: float, tolerance: float) -> bool:
    return abs(observed - expected) <= tolerance * expected


def check_reports(host: str, wanted: list[str], events: list[AgentEvent]) -> list[Check]:
    """Events the app must have reported on the way (blocked, unblocked, ...)."""
    out = []
    for name in wanted:
        seen = [e for e in events if e.host == host and e.event == name]
        evidence = [f"{host}.events.jsonl: first at {seen[0].t:.3f}"] if seen else []
        out.append(
            Check(f"apps.{host}.reports.{name}", bool(seen), "reported", f"{len(seen)} times", evidence)
        )
    return out
