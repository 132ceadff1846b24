"""The kernel model's predictions for a captured connection, next to what the capture shows.

For a connection that ended in silence with data unacknowledged, the model says when the RTO
abort comes (``tcp_retries2``'s time budget, or TCP_USER_TIMEOUT) counted from the first send of
the oldest unacknowledged segment; for unanswered keep-alive probes, when the keep-alive abort
comes (idle + probes x interval, the kernel's RST) counted from the last segment received.

What a capture can show differs between the two. The keep-alive abort is seen: the kernel sends
an RST. The RTO abort sends nothing, so it is inferred: after the last retransmission the timer
fires once more (at twice the last gap) and, finding the budget spent, gives up. When the two
differ by more than the tolerance (10%), the capture is searched for the known causes: a
tail-loss probe as the first retransmission, an RTO above the 200 ms floor, ICMP unreachables
that undid a backoff step (RFC 6069), and sends failing locally, which Linux retries every
500 ms without backing off (TCP_RESOURCE_PROBE_INTERVAL); and the setting that would fit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.kernel.settings import KernelSettings
from orchestrator.kernel.timers import (
    TCP_RTO_MIN,
    keepalive_abort_after,
    next_timer_expiry,
    rto_abort_after,
)
from orchestrator.pcap.icmp import IcmpError
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side

__all__ = ["TOLERANCE", "KernelPrediction", "capture_end", "predict_connection"]

TOLERANCE = 0.10
_LOCAL_RETRY = 0.5  # s, TCP_RESOURCE_PROBE_INTERVAL
# A segment neither retransmitted nor this long behind the capture's end proves nothing yet.
_TOO_SOON = 5 * TCP_RTO_MIN
# tcp_retries2 -> its budget, for finding the value that fits an observed abort.
_BUDGETS = {n: rto_abort_after(n) for n in range(31)}
_NO_CAUSE = "no known cause (tail-loss probe, ICMP-reverted backoff, local drop) shows in the capture"


@dataclass(slots=True)
class KernelPrediction:
    kind: Literal["rto-abort", "keepalive-abort"]
    side: Side  # whose kernel gives up
    predicted_s: float
    start_time: float  # epoch seconds the times count from
    start: str  # what that moment is
    basis: str  # the settings the prediction comes from
    observed_s: float | None = None
    observed: str = ""  # how the observed time was found, or why there is none
    deviation: float | None = None  # observed / predicted - 1
    within_tolerance: bool | None = None
    explanations: list[str] = field(default_factory=list)


def capture_end(conns: Iterable[ConnectionSummary]) -> float | None:
    """The time of the capture's last segment, as `predict_connection` wants it: the latest
    last frame of the connections (None for none)."""
    return max((c.last_frame.time for c in conns if c.last_frame), default=None)


def predict_connection(
    conn: ConnectionSummary,
    settings_for: Callable[[Side], KernelSettings],
    icmp_errors: Sequence[IcmpError] = (),
    capture_end: float | None = None,
    tolerance: float = TOLERANCE,
) -> list[KernelPrediction]:
    """The predictions that apply to `conn`, each compared with the capture. `settings_for`
    gives a side's settings; `capture_end` is the time of the capture's last segment."""
    end = capture_end if capture_end is not None else (conn.last_frame.time if conn.last_frame else 0.0)
    out: list[KernelPrediction] = []
    for side in ("client", "server"):
        found = _rto_abort(conn, side, settings_for(side), icmp_errors, end)
        if found is None:
            found = _keepalive_abort(conn, side, settings_for(side), end)
        if found is not None:
            _judge(found, tolerance)
            out.append(found)
    return out


def _judge(p: KernelPrediction, tolerance: float) -> None:
    if p.observed_s is not None and p.predicted_s > 0:
        p.deviation = round(p.observed_s / p.predicted_s - 1, 4)
        p.within_tolerance = abs(p.deviation) <= tolerance
    if p.within_tolerance:
        p.explanations.clear()  # nothing to explain
    elif p.within_tolerance is False and not p.explanations:
        p.explanations.append(_NO_CAUSE)


def _other(side: Side) -> Side:
    return "server" if side == "client" else "client"


def _ends(conn: ConnectionSummary, side: Side) -> tuple[str, int, str, int]:
    """(address, port) of `side` then of its peer, from "IP:PORT" or "[IPv6]:PORT"."""
    here, there = (conn.client, conn.server) if side == "client" else (conn.server, conn.client)
    a, pa = here.rsplit(":", 1)
    b, pb = there.rsplit(":", 1)
    return a.strip("[]"), int(pa), b.strip("[]"), int(pb)


# ---------------------------------------------------------------------------------------------
# RTO abort


def _rto_abort(
    conn: ConnectionSummary, side: Side, s: KernelSettings, icmp: Sequence[IcmpError], capture_end: float
) -> KernelPrediction | None:
    start = conn.oldest_unacked
    if start is None or conn.oldest_unacked_from != side or conn.close != "none":
        return None  # nothing left unacknowledged, or the connection was closed or reset
    sends = conn.backoff_frames if conn.backoff_from == side and conn.backoff_frames[:1] == [start] else []
    gaps = [round(b.time - a.time, 6) for a, b in itertools.pairwise(sends)]
    if not gaps and capture_end - start.time < _TOO_SOON:
        return None  # still in flight when the capture ended
    if s.user_timeout:
        budget, basis = s.user_timeout, s.label("user_timeout")
    else:
        budget = rto_abort_after(s.retries2)
        basis = f"{s.label('retries2')}: a budget of {budget:g} s"
    what = f"the first send of the oldest unacknowledged segment ({start.file} frame {start.frame})"
    p = KernelPrediction("rto-abort", side, budget, start.time, what, basis)
    if gaps:
        last = sends[-1].time
        at = next_timer_expiry(last, gaps[-1])
        if s.user_timeout:  # the last timer is clamped to expire at the user timeout
            at = min(at, max(start.time + s.user_timeout, last))
        p.observed_s = round(at - start.time, 6)
        p.observed = (
            f"inferred: nothing after the retransmission at +{last - start.time:.3f} s, so the kernel "
            f"gave up when its timer fired next, {at - last:.3f} s later"
        )
        if capture_end < at:
            p.observed += f" (the capture's last segment is at +{capture_end - start.time:.3f} s, before it)"
    else:
        p.observed = "no retransmission of the segment was captured"
    original = bool(sends) and sends[0] not in conn.retransmission_frames.of(side)
    p.explanations = _rto_causes(conn, side, s, gaps, original, icmp, capture_end - start.time, p)
    return p


def _rto_causes(
    conn: ConnectionSummary,
    side: Side,
    s: KernelSettings,
    gaps: list[float],
    original: bool,
    icmp: Sequence[IcmpError],
    watched: float,
    p: KernelPrediction,
) -> list[str]:
    out: list[str] = []
    rto_gaps = gaps  # the first gap is from the original send when that was captured
    if (
        original
        and len(gaps) >= 2
        and gaps[1] < 1.5 * gaps[0]
        and (len(gaps) < 3 or 1.5 <= gaps[2] / gaps[1] <= 2.5)
    ):
        out.append(
            f"the first retransmission, {gaps[0]:.3f} s after the original send, was a tail-loss probe "
            "(about 2 x SRTT, +200 ms with one segment in flight), not an RTO expiry: the backoff began "
            "after it, one retransmission later than the model's"
        )
        rto_gaps = gaps[1:]
    if rto_gaps and rto_gaps[0] > TCP_RTO_MIN * 1.1:
        out.append(
            f"the RTO began at {rto_gaps[0]:.3f} s, above the {TCP_RTO_MIN * 1000:.0f} ms floor the model "
            "assumes (srtt + 4 x rttvar): the timer's expiries do not land on the budget, and the kernel "
            "gives up at the first one past it"
        )
    here, hport, there, tport = _ends(conn, side)
    errors = [
        e
        for e in icmp
        if e.reverts_backoff
        and (e.tcp_src, e.tcp_sport, e.tcp_dst, e.tcp_dport) == (here, hport, there, tport)
    ]
    if errors:
        first = errors[0]
        out.append(
            f"{len(errors)} ICMP destination-unreachable error(s) for this connection (the first from "
            f"{first.src} at +{first.time - p.start_time:.3f} s, frame {first.frame}): each one undid a "
            "backoff step (RFC 6069), so the retransmissions came sooner and more often than doubling"
        )
    flat = sum(1 for g in rto_gaps[1:] if abs(g - _LOCAL_RETRY) <= _LOCAL_RETRY * 0.1)
    if flat >= 2:
        out.append(
            f"{flat} retransmissions came {_LOCAL_RETRY * 1000:.0f} ms apart without doubling: the sends "
            "failed on the host itself (no route, or a local qdisc or netfilter drop), and Linux retries "
            "a failed send every 500 ms (TCP_RESOURCE_PROBE_INTERVAL) while the budget keeps counting"
        )
    if not gaps and watched > 2 * TCP_RTO_MIN:
        out.append(
            f"no retransmission of the segment appears in the {watched:.3f} s the capture goes on: "
            "they did not reach the capture point, as when sends fail locally (Linux then retries every "
            "500 ms without backoff), or the capture was taken where they were lost"
        )
    if p.observed_s is not None and not s.user_timeout:
        observed = p.observed_s
        fit = min(_BUDGETS, key=lambda n: abs(_BUDGETS[n] - observed))
        if fit != s.retries2 and abs(_BUDGETS[fit] / observed - 1) <= TOLERANCE:
            out.append(f"tcp_retries2={fit} ({_BUDGETS[fit]:g} s) fits what the capture shows")
    return out


# ---------------------------------------------------------------------------------------------
# Keep-alive abort


def _keepalive_abort(
    conn: ConnectionSummary, side: Side, s: KernelSettings, capture_end: float
) -> KernelPrediction | None:
    timing = conn.keepalive
    frames = conn.keepalive_frames.of(side)
    probes = conn.keepalive_probes.get(side) - conn.keepalive_in_zero_window.get(side)
    if conn.keepalive_from != side or timing is None or not frames or probes <= 0:
        return None
    if conn.keepalive_acks.get(_other(side)):
        return None  # answered: the peer is alive, no abort is due
    start_time = frames[0].time - timing.first_after_idle_s
    predicted = keepalive_abort_after(
        s.keepalive_time, s.keepalive_intvl, s.keepalive_probes, user_timeout=s.user_timeout
    )
    basis = f"idle {s.label('keepalive_time')} + {s.label('keepalive_probes')} x {s.label('keepalive_intvl')}"
    if s.user_timeout:
        basis += f", {s.label('user_timeout')}"
    p = KernelPrediction(
        "keepalive-abort",
        side,
        predicted,
        start_time,
        "the last segment it received before the probes",
        basis,
    )
    last = frames[-1]
    rst = next((r for r in conn.rsts.of(side) if r.time >= last.time), None)
    if rst is not None:
        p.observed_s = round(rst.time - start_time, 6)
        p.observed = f"seen: the kernel's RST after the last probe ({rst.file} frame {rst.frame})"
    else:
        p.observed = (
            f"no RST from {side} after its probes; the capture ends +{capture_end - start_time:.3f} s "
            "after the idle start"
        )
    p.explanations = _keepalive_causes(conn, s, probes, rst, capture_end, p)
    return p


def _keepalive_causes(
    conn: ConnectionSummary,
    s: KernelSettings,
    probes: int,
    rst: FrameRef | None,
    capture_end: float,
    p: KernelPrediction,
) -> list[str]:
    timing = conn.keepalive
    assert timing is not None
    out: list[str] = []
    idle, interval = timing.first_after_idle_s, timing.interval_s
    if not _near(idle, s.keepalive_time):
        out.append(f"the first probe came after {idle:.3f} s idle, not {s.label('keepalive_time')}")
    if (
        interval is not None
        and abs(interval - _LOCAL_RETRY) <= _LOCAL_RETRY * 0.1
        and not _near(interval, s.keepalive_intvl)
    ):
        out.append(
            "probes came every 500 ms: they failed on the host itself, and Linux retries a failed probe "
            "every 500 ms (TCP_RESOURCE_PROBE_INTERVAL) without counting it, so the abort comes later"
        )
    elif interval is not None and not _near(interval, s.keepalive_intvl):
        out.append(f"probes came every {interval:.3f} s, not {s.label('keepalive_intvl')}")
    if rst is not None and probes != s.keepalive_probes and not s.user_timeout:
        out.append(f"{probes} probes went out before the RST, not {s.label('keepalive_probes')}")
    if rst is None and p.start_time + p.predicted_s > capture_end:
        out.append("the capture ends before the moment the model gives for the abort")
    if rst is not None and interval is not None:
        out.append(f"idle {idle:.3f} s + {probes} x {interval:.3f} s fits what the capture shows")
    return out


def _near(observed: float, expected: float) -> bool:
    return abs(observed - expected) <= TOLERANCE * expected
