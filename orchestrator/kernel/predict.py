"""The kernel model's predictions for a captured connection, next to what the capture shows:
the one prediction path, used by `tcpscen run`'s verdict and by `tcpscen analyze` alike.

For each side, the first of these that applies (each module says how it is modelled):

* ``connect-timeout`` / ``icmp-error``: a SYN never answered (`handshake`);
* ``synack-timeout``: a SYN-ACK never acknowledged: the listener drops the request (`handshake`);
* ``rto-abort``: data never acknowledged: ``tcp_retries2``'s budget or TCP_USER_TIMEOUT, from
  the first retransmission by the timer (`rto`);
* ``zerowindow-abort``: zero-window probes left unanswered, ``tcp_retries2`` of them (`zerowindow`);
* ``keepalive-abort``: keep-alive probes left unanswered (`keepalive`).

Every time is in seconds after ``start_time`` (``predicted_s``, and the JSON's ``from.time``).
What a capture can show differs: the keep-alive abort is seen (the kernel's RST), the RTO and
connect aborts are inferred (nothing is sent; the timer's next expiry is when it happened).
A capture that ends first shows nothing, and the prediction says so instead of guessing.
Timers fire up to 1/8 late (the kernel's timer wheel), so the tolerance is one-sided wider.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from orchestrator.kernel.settings import KernelSettings
from orchestrator.pcap.icmp import IcmpError
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side

__all__ = [
    "TOLERANCE",
    "KernelPrediction",
    "Kind",
    "capture_end",
    "nearest_end",
    "predict_connection",
    "prediction_from_json",
    "prediction_json",
]

TOLERANCE = 0.10
# The timer wheel rounds an expiry up by at most 1/8 (docs/kernel-facts.md): later is allowed more.
WHEEL_SLACK = 0.125

Kind = Literal[
    "rto-abort", "keepalive-abort", "zerowindow-abort", "connect-timeout", "synack-timeout", "icmp-error"
]


@dataclass(slots=True)
class KernelPrediction:
    kind: Kind
    side: Side  # whose kernel gives up
    predicted_s: float  # after start_time
    start_time: float  # epoch seconds the times count from
    start: str  # what that moment is
    basis: str  # the settings the prediction comes from
    observed_s: float | None = None
    observed: str = ""  # how the observed time was found, or why there is none
    deviation: float | None = None  # observed / predicted - 1
    within_tolerance: bool | None = None
    explanations: list[str] = field(default_factory=list)
    # Added to the contract: the frame the times count from, what the app is told at the end,
    # and whether the model's end lies after the capture's.
    start_frame: FrameRef | None = None
    app_error: str = "ETIMEDOUT"
    beyond_capture: bool = False
    # Other ends the model allows (a retransmission within the timer's slack of the budget
    # may fall either side of it), in seconds after start_time.
    alternatives: list[float] = field(default_factory=list)
    # The times count from a moment that may be later than the model's start (a capture that
    # begins in the middle of a backoff): the end comes at predicted_s at the latest.
    upper_bound: bool = False
    # The end if the socket is an orphan (its app close()d it after its FIN): no app is told.
    orphan_s: float | None = None
    # Where the packets bound the end but do not show it (a user timeout's clamp, which sends
    # nothing): after the first, by the second, seconds after start_time; observed_s is None.
    observed_window: tuple[float, float] | None = None

    @property
    def at(self) -> float:
        """The predicted end, epoch seconds."""
        return self.start_time + self.predicted_s

    def describe(self) -> str:
        where = f"{self.start_frame.file}#{self.start_frame.frame}" if self.start_frame else self.start
        return f"{self.kind} {self.predicted_s:.3f}s after {where} ({self.basis})"


def prediction_json(p: KernelPrediction) -> dict[str, Any]:
    """The JSON of a prediction (`tcpscen analyze --json`'s contract, and verdict.json):
    kind, side, predicted_s and from.time keep their meaning; fields may only be added."""
    start: dict[str, Any] = {"time": p.start_time, "what": p.start}
    if p.start_frame is not None:
        start.update(file=p.start_frame.file, frame=p.start_frame.frame)
    return {
        "kind": p.kind,
        "side": p.side,
        "predicted_s": p.predicted_s,
        "from": start,
        "basis": p.basis,
        "observed_s": p.observed_s,
        "observed": p.observed,
        "deviation": p.deviation,
        "within_tolerance": p.within_tolerance,
        "explanations": list(p.explanations),
        "app_error": p.app_error,
        "beyond_capture": p.beyond_capture,
        "alternatives_s": list(p.alternatives),
        "upper_bound": p.upper_bound,
        # Only where the model allows an orphan's end, so other predictions read as before.
        **({"orphan_s": p.orphan_s} if p.orphan_s is not None else {}),
        **({"observed_window_s": list(p.observed_window)} if p.observed_window is not None else {}),
    }


def prediction_from_json(raw: dict[str, Any]) -> KernelPrediction:
    """Read back `prediction_json`, or a run directory's older shape (kind, seconds, start, basis)."""
    if "predicted_s" not in raw:  # before the one prediction path
        start = raw["start"]
        frame = FrameRef(start["file"], start["frame"], start["time"])
        return KernelPrediction(
            cast(Kind, raw["kind"] if raw["kind"] != "user-timeout" else "rto-abort"),
            "client",
            raw["seconds"],
            frame.time,
            f"{frame.file} frame {frame.frame}",
            raw.get("basis", ""),
            start_frame=frame,
        )
    origin = raw["from"]
    found = (
        FrameRef(origin["file"], origin["frame"], origin["time"])
        if "file" in origin and "frame" in origin
        else None
    )
    return KernelPrediction(
        cast(Kind, raw["kind"]),
        cast(Side, raw["side"]),
        raw["predicted_s"],
        origin["time"],
        origin.get("what", ""),
        raw.get("basis", ""),
        raw.get("observed_s"),
        raw.get("observed", ""),
        raw.get("deviation"),
        raw.get("within_tolerance"),
        list(raw.get("explanations", [])),
        start_frame=found,
        app_error=raw.get("app_error", "ETIMEDOUT"),
        beyond_capture=bool(raw.get("beyond_capture", False)),
        alternatives=list(raw.get("alternatives_s", [])),
        upper_bound=bool(raw.get("upper_bound", False)),
        orphan_s=raw.get("orphan_s"),
        observed_window=_window(raw.get("observed_window_s")),
    )


def _window(raw: object) -> tuple[float, float] | None:
    if isinstance(raw, list) and len(raw) == 2:
        return float(raw[0]), float(raw[1])
    return None


SettingsFor = Callable[[Side], KernelSettings]


def capture_end(conns: Iterable[ConnectionSummary]) -> float | None:
    """The time of the capture's last segment, as `predict_connection` wants it: the latest
    last frame of the connections (None for none)."""
    return max((c.last_frame.time for c in conns if c.last_frame), default=None)


def predict_connection(
    conn: ConnectionSummary,
    settings_for: SettingsFor,
    icmp_errors: Sequence[IcmpError] = (),
    capture_end: float | None = None,
    tolerance: float = TOLERANCE,
) -> list[KernelPrediction]:
    """The predictions that apply to `conn`, each compared with the capture. `settings_for`
    gives a side's settings; `capture_end` is when the observation ended (a capture's last
    segment, or the end of a run)."""
    if conn.oldest_unacked is None and conn.keepalive is None:
        # handshake and rto want an unacknowledged segment, zerowindow and keepalive probes:
        # half the connections of a big capture have neither.
        return []
    handshake, rto, zerowindow, keepalive = _families()
    end = capture_end if capture_end is not None else (conn.last_frame.time if conn.last_frame else 0.0)
    errors = [e for e in icmp_errors if about(e, conn)] if icmp_errors else []
    out: list[KernelPrediction] = []
    for side in ("client", "server"):
        s = settings_for(side)
        found = (
            handshake(conn, side, s, errors, end)
            or rto(conn, side, s, errors, end)
            or zerowindow(conn, side, s, end)
            or keepalive(conn, side, s, end)
        )
        if found is not None:
            judge(found, tolerance)
            out.append(found)
    return out


_WithErrors = Callable[
    [ConnectionSummary, Side, KernelSettings, list[IcmpError], float], KernelPrediction | None
]
_Plain = Callable[[ConnectionSummary, Side, KernelSettings, float], KernelPrediction | None]


@functools.cache
def _families() -> tuple[_WithErrors, _WithErrors, _Plain, _Plain]:
    """The families' predictions, in the order they are tried. Imported on first use, as each
    family imports this module's types; once, as a connection's predictions are made by the
    thousand."""
    from orchestrator.kernel import handshake, keepalive, rto, zerowindow  # noqa: PLC0415

    return handshake.predict, rto.predict, zerowindow.predict, keepalive.predict


def judge(p: KernelPrediction, tolerance: float) -> None:
    """Deviation and verdict of the observed end against the prediction, or the nearest of its
    alternatives; an end "at once" (0 s) is judged within 50 ms."""
    if p.observed_s is None and p.observed_window is not None:
        # The packets bound the end: the model fits if one of its ends falls in the bounds
        # (the expiry late by the wheel, the clamp within AT_ONCE of the last retransmission).
        lo, hi = p.observed_window
        if p.upper_bound:  # any end up to the bound fits
            p.within_tolerance = lo - AT_ONCE <= p.predicted_s
        else:
            ends = [p.predicted_s, *p.alternatives]
            p.within_tolerance = any(lo - AT_ONCE <= e <= hi * (1 + WHEEL_SLACK) for e in ends)
        if not p.within_tolerance and not p.explanations:
            p.explanations.append(NO_CAUSE)
        return
    if p.observed_s is None:
        p.within_tolerance = None
        return
    observed = p.observed_s
    best = nearest_end(p, observed)
    if p.upper_bound:  # any time up to the bound fits
        p.deviation = round(observed / p.predicted_s - 1, 4) if p.predicted_s > 0 else None
        p.within_tolerance = under(observed, p.predicted_s, tolerance)
    elif best <= 0:
        p.deviation = None
        p.within_tolerance = abs(observed - best) <= AT_ONCE
    else:
        p.deviation = round(observed / best - 1, 4)
        p.within_tolerance = -tolerance <= p.deviation <= tolerance + WHEEL_SLACK
    if p.within_tolerance:
        p.explanations = [
            e for e in p.explanations if e.startswith(KEEP) or (e[0].isdigit() and "500 ms" in e)
        ]
    elif not p.explanations:
        p.explanations.append(NO_CAUSE)


AT_ONCE = 0.05  # s
# Explanations that stay even when the observation agrees: they tell what the model took into account.
KEEP = (
    "the first retransmission",
    "knife edge",
    "the connect was ended",
    "retransmissions came 500 ms",
    "the capture starts with this segment",
    "after its FIN",
    "the probes stopped doubling",
    "linear timeouts",
    "reverted backoff",
    "no reverted backoff",
)
NO_CAUSE = "no known cause (tail-loss probe, ICMP-reverted backoff, local drop) shows in the capture"


@dataclass(frozen=True, slots=True)
class BoundWords:
    """How one kind of abort's bounds read (`observe_between`): `between` with {lo}, {hi} and
    {bound} to fill, `expiry` the expiry that bounds it, `unbounded` with {lo}."""

    between: str
    expiry: str
    unbounded: str


def observe_between(p: KernelPrediction, lo: float, expiry: float, end: float, words: BoundWords) -> None:
    """A user timeout's clamp ended it before the timer's next expiry: the kernel checks it when
    the timer fires, clamped to what is left of it, and sends nothing. So the packets say only
    that the end came after the last send (`lo`) and before that expiry (which would have sent
    another) or the capture's end, all s after start_time; the clamp's own time as the observed
    end would match the model by construction (its deviation 0 whatever the kernel did)."""
    lo, hi = round(lo, 6), round(min(expiry, end), 6)
    if hi <= lo:  # the capture ends with that send: it bounds nothing after it
        p.observed = words.unbounded.format(lo=lo)
        return
    p.observed_window = (lo, hi)
    bound = f"{words.expiry}, which would have sent another" if expiry <= end else "the capture's end"
    p.observed = words.between.format(lo=lo, hi=hi, bound=bound)


def nearest_end(p: KernelPrediction, observed: float) -> float:
    """Of the ends the model allows (the prediction and its alternatives), the nearest to `observed`."""
    return min([p.predicted_s, *p.alternatives], key=lambda e: abs(observed - e))


def about(e: IcmpError, conn: ConnectionSummary) -> bool:
    """Whether an ICMP error quotes a segment of this connection (either direction)."""
    ends = {conn.client, conn.server}
    return endpoint(e.tcp_src, e.tcp_sport) in ends and endpoint(e.tcp_dst, e.tcp_dport) in ends


def endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def ends(conn: ConnectionSummary, side: Side) -> tuple[str, str]:
    """`side`'s endpoint, then its peer's, as "IP:PORT"."""
    return (conn.client, conn.server) if side == "client" else (conn.server, conn.client)


def other(side: Side) -> Side:
    return "server" if side == "client" else "client"


def near(observed: float, expected: float, tolerance: float = TOLERANCE) -> bool:
    return -tolerance * expected <= observed - expected <= (tolerance + WHEEL_SLACK) * expected


def under(observed: float, bound: float, tolerance: float = TOLERANCE) -> bool:
    """At most `bound`, with `near`'s allowance for lateness: an upper bound's test."""
    return 0 <= observed <= bound * (1 + tolerance + WHEEL_SLACK)


def ref(f: FrameRef) -> str:
    return f"{f.file} frame {f.frame}"
