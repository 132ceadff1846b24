"""The kernel's own state of a connection's socket, as a thin band beside its host's line in the
ladder: coloured by state (from HOST.sockets.jsonl), labelled where the state or its timer
changes, ended by a ✕ where the kernel forgot the socket.

The ladder's vertical axis is not linear time (rows are evenly spaced, silences compressed), so
the band is placed on the drawing's own axis (`TimeAxis`: the times and heights of what was
drawn), and a state change sits among the segments that caused it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.report.svg import esc, rect, text, title
from orchestrator.tcp.connection import Side
from orchestrator.verdict.socket_timeline import SocketSeries, SocketTimeline, load_timelines
from orchestrator.verdict.ss_output import SocketSample

STATE_COLORS = {
    "ESTAB": "#16a34a",
    "SYN-SENT": "#60a5fa",
    "SYN-RECV": "#60a5fa",
    "FIN-WAIT-1": "#f59e0b",
    "FIN-WAIT-2": "#f59e0b",
    "CLOSING": "#f59e0b",
    "LAST-ACK": "#f59e0b",
    "CLOSE-WAIT": "#dc2626",  # the app never closed: what piles up in a pool
    "TIME-WAIT": "#8b5cf6",
}
OTHER_COLOR = "#9ca3af"
LANE_W = 5.0
LANE_GAP = 3.0  # between the host's line and its band


@dataclass(frozen=True)
class LaneSpan:
    """Consecutive samples with one state and one timer kind."""

    state: str
    timer: str
    first: SocketSample
    last: SocketSample
    end: float  # the next sample's time (or the last sample's)

    @property
    def label(self) -> str:
        return self.state if self.timer in ("none", "timewait") else f"{self.state} · {self.timer}"


@dataclass
class Lane:
    host: str
    file: str
    spans: list[LaneSpan] = field(default_factory=list)
    gone: float | None = None  # the first sample without the socket
    kernel_gone: bool = False  # it went with its kernel (power off)


def lane_of(host: str, file: str, series: list[SocketSeries]) -> Lane | None:
    """The band of one end of a connection (its sockets in time order), or None if never sampled."""
    if not series:
        return None
    lane = Lane(host, file)
    for s in series:
        spans: list[list[SocketSample]] = []
        for sample in s.samples:
            if spans and (spans[-1][0].state, spans[-1][0].timer) == (sample.state, sample.timer):
                spans[-1].append(sample)
            else:
                spans.append([sample])
        starts = [run[0].t for run in spans[1:]]
        # Gone at a sample of the same kernel: the band reaches it. Gone with the kernel: the
        # next kernel's first sample may come seconds later, so the band stops at its last.
        ended = s.gone.t if s.gone is not None else s.last.t
        for run, end in zip(spans, [*starts, ended], strict=True):
            lane.spans.append(LaneSpan(run[0].state, run[0].timer, run[0], run[-1], end))
    last = series[-1]
    if last.gone is not None:
        lane.gone = last.gone.t
    elif last.kernel_gone is not None:
        lane.gone, lane.kernel_gone = last.last.t, True
    return lane


def run_timelines(run_dir: Path, hosts: Iterable[str], t_end: float | None) -> dict[str, SocketTimeline]:
    """The hosts' socket timelines, up to the end of the observation (teardown comes after)."""
    return {h: tl.until(t_end) for h, tl in load_timelines(run_dir, hosts).items()}


def lanes_for(
    timelines: Mapping[str, SocketTimeline], ends: Mapping[Side, tuple[str, str, str]]
) -> dict[Side, Lane]:
    """Each end's lane: `ends` gives, per side, (host, its endpoint, the peer's endpoint)."""
    out: dict[Side, Lane] = {}
    for side, (host, local, peer) in ends.items():
        tl = timelines.get(host)
        lane = lane_of(host, tl.file, tl.of(local, peer)) if tl is not None else None
        if lane is not None:
            out[side] = lane
    return out


class TimeAxis:
    """Time -> height on the ladder, from (time, y) points of what was drawn, interpolated;
    clamped before the first and after the last."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        ordered = sorted(points)
        self.times: list[float] = []
        self.ys: list[float] = []
        top = float("-inf")
        for t, y in ordered:
            top = max(top, y)  # a repeated group's rows overlap in time: keep heights rising
            self.times.append(t)
            self.ys.append(top)

    def y(self, t: float) -> float:
        if not self.times:
            return 0.0
        i = bisect.bisect_left(self.times, t)
        if i <= 0:
            return self.ys[0]
        if i >= len(self.times):
            return self.ys[-1]
        t1, t2, y1, y2 = self.times[i - 1], self.times[i], self.ys[i - 1], self.ys[i]
        return y1 if t2 == t1 else y1 + (y2 - y1) * (t - t1) / (t2 - t1)


def draw_lane(lane: Lane, x: float, outward: int, axis: TimeAxis, t0: float) -> str:
    """The band beside the line at `x`: on its left (`outward` -1, the client) or right (+1)."""
    band_x = x + outward * LANE_GAP - (LANE_W if outward < 0 else 0)
    # Labels inside, between the lines: the outer side is where the apps' events are labelled.
    label_x = x - outward * 5
    anchor = "start" if outward < 0 else "end"
    out = ['<g class="state-lane">']
    last_label_y = float("-inf")
    for span in lane.spans:
        y1, y2 = axis.y(span.first.t), axis.y(span.end)
        color = STATE_COLORS.get(span.state, OTHER_COLOR)
        out.append(
            "<g>"
            + title(_tooltip(lane, span, t0))
            + rect(band_x, y1, LANE_W, max(2.0, y2 - y1), fill=color, class_=f"lane {span.state}")
            + "</g>"
        )
        if y1 - last_label_y >= 11:  # labels never pile up where states change fast
            out.append(_label(label_x, y1 + 8, span.label, color, anchor))
            last_label_y = y1
    if lane.gone is not None:
        y = axis.y(lane.gone)
        words = "✕ gone with its kernel" if lane.kernel_gone else "✕ no socket"
        out.append(_label(label_x, y + 4, words, "#6b7280", anchor))
    out.append("</g>")
    return "".join(out)


def _label(x: float, y: float, words: str, color: str, anchor: str) -> str:
    return text(
        x,
        y,
        words,
        text_anchor=anchor,
        fill=color,
        font_size=9,
        stroke="#fff",
        stroke_width=3,
        paint_order="stroke",
        class_="lane-label",
    )


def _tooltip(lane: Lane, span: LaneSpan, t0: float) -> str:
    last = span.last
    lines = [
        f"{lane.host}'s kernel (ss): {span.state} from {span.first.t - t0:+.3f} s to {span.end - t0:+.3f} s",
        f"last sample: {last.describe()}",
        f"{lane.file}:{span.first.line}" + (f"-{last.line}" if last.line != span.first.line else ""),
    ]
    if last.rto_ms is not None:
        lines.append(
            f"rto {last.rto_ms:g} ms, unacked {last.unacked}, retrans {last.retrans}/{last.retrans_total}"
        )
    return "\n".join(lines)


def lane_legend() -> str:
    keys = [
        ("ESTAB", "ESTAB"),
        ("CLOSE-WAIT", "CLOSE-WAIT"),
        ("TIME-WAIT", "TIME-WAIT"),
        ("FIN-WAIT-1", "closing"),
    ]
    swatches = "".join(
        f'<span class="key"><span class="lane-swatch" style="background:{STATE_COLORS[k]}"></span>'
        f"{esc(w)}</span>"
        for k, w in keys
    )
    return (
        f'<p class="legend"><span class="key">beside each line, its kernel\'s socket state (ss every '
        f'0.2 s):</span>{swatches}<span class="key">✕ the kernel no longer has it</span></p>'
    )
