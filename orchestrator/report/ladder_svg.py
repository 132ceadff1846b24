"""The ladder (sequence) diagram of one connection, as inline SVG.

The two hosts are vertical lines; each segment is an arrow from its sender, labelled like
Wireshark's Info column, one row per segment in time order (rows are evenly spaced so a burst
stays readable; a long silence adds space and says how long). Faults are bands across both
lines, the apps' events are dots on their host's line. Every arrow has a tooltip with its frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from orchestrator.report.state_lane import Lane, TimeAxis, draw_lane
from orchestrator.report.svg import COLORS, TIMES, arrow_markers, esc, line, rect, svg_open, text, title
from orchestrator.run.records import AgentEvent, FaultRecord
from orchestrator.tcp.connection import Side
from orchestrator.tcp.ladder import Elision, Ladder, LadderRow

WIDTH = 1180
X_TIME = 8
SIDES: tuple[Side, Side] = ("client", "server")
X: dict[Side, float] = {"client": 340.0, "server": 860.0}
TOP = 70
ROW_H = 26
DROP = 7  # an arrow slopes down a little, as in the classic drawings
GAP_S = 0.25  # silences longer than this add space
FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"

MARK_NAMES = {
    "retransmission": "TCP Retransmission",
    "fast_retransmission": "TCP Fast Retransmission",
    "spurious_retransmission": "TCP Spurious Retransmission",
    "out_of_order": "TCP Out-Of-Order",
    "keep_alive": "TCP Keep-Alive",
    "zero_window": "TCP ZeroWindow",
    "zero_window_probe": "TCP ZeroWindowProbe",
}


@dataclass(frozen=True)
class End:
    """One vertical line: a host, its end of the connection, where its packets were read."""

    name: str
    endpoint: str
    captures: str = ""


@dataclass
class LadderScene:
    ladder: Ladder
    t0: float
    ends: dict[Side, End]
    faults: list[FaultRecord] = field(default_factory=list)
    events: dict[Side, list[AgentEvent]] = field(default_factory=dict)
    lanes: dict[Side, Lane] = field(default_factory=dict)  # each end's socket state (ss samples)


Item = LadderRow | FaultRecord | tuple[Side, AgentEvent] | Elision


def mark_names(labels: frozenset[str]) -> list[str]:
    names = [MARK_NAMES[k] for k in MARK_NAMES if k in labels]
    if len(names) > 1 and "TCP Retransmission" in names:
        names.remove("TCP Retransmission")  # a fast or spurious one says more
    return names


def category(row: LadderRow) -> str:
    labels = row.labels
    if "RST" in row.flags:
        return "rst"
    if labels & {"retransmission", "fast_retransmission", "spurious_retransmission"}:
        return "retransmission"
    if labels & {"keep_alive", "zero_window_probe"}:
        return "probe"
    if "zero_window" in labels:
        return "zero_window"
    if "out_of_order" in labels:
        return "out_of_order"
    if "SYN" in row.flags or "FIN" in row.flags:
        return "control"
    return "data" if row.length else "ack"


def row_label(row: LadderRow) -> str:
    parts = [f"[{row.flags}]", f"Seq={row.seq}"]
    if row.ack is not None:
        parts.append(f"Ack={row.ack}")
    if row.window == 0 and "RST" not in row.flags:
        parts.append("Win=0")
    parts.append(f"Len={row.length}")
    return " ".join(parts)


def draw_ladder(scene: LadderScene) -> str:
    return _Drawing(scene).draw()


class _Drawing:
    def __init__(self, scene: LadderScene) -> None:
        self.scene = scene
        self.out: list[str] = []
        self.y = float(TOP)
        self.group: tuple[float, int, LadderRow] | None = None  # (top y, rows left, first row)
        self.points: list[tuple[float, float]] = []  # (time, y) of what was drawn: the lanes' axis

    def draw(self) -> str:
        last: float | None = None
        for item in self._items():
            start, end = _span(item)
            if last is not None and start - last > GAP_S:
                self._gap(start - last)
            top = self.y
            self._item(item)
            self.points.append((start, top + 13))
            if end > start:
                self.points.append((end, self.y - 13))
            last = end if last is None else max(last, end)
        self._lanes(last)
        height = self.y + 24
        head = [svg_open(WIDTH, height, "ladder", "ladder diagram"), arrow_markers()]
        head.append(f'<g font-family="{FONT}" font-size="11">')
        for side in SIDES:
            x = X[side]
            head.append(line(x, 52, x, height - 8, stroke="#111827", stroke_width=1.5, class_="host-line"))
            head.append(self._host_box(side, x))
        return "".join([*head, *self.out, "</g></svg>"])

    def _items(self) -> list[Item]:
        s = self.scene
        extras: list[tuple[float, int, Item]] = [(f.in_effect, 0, f) for f in s.faults]
        extras += [(e.t, 1, (side, e)) for side, evs in s.events.items() for e in evs]
        extras.sort(key=lambda x: (x[0], x[1]))
        out: list[Item] = []
        j = 0
        elision = s.ladder.elision
        for i, row in enumerate(s.ladder.rows):
            if row.group_start:  # never between the rows of a repeated group
                while j < len(extras) and extras[j][0] <= row.time:
                    out.append(extras[j][2])
                    j += 1
            out.append(row)
            if elision is not None and i == elision.after_row:
                out.append(elision)
        out.extend(x[2] for x in extras[j:])
        return out

    def _lanes(self, last: float | None) -> None:
        """The sockets' state beside each line; their samples may go on after the last segment."""
        lanes = self.scene.lanes
        if not lanes:
            return
        end = max(max(s.end for s in lane.spans) for lane in lanes.values())
        if last is not None and end - last > GAP_S:
            self._gap(end - last)
            y = self.y + 6
            words = f"last socket sample at {self._rel(end):+.3f} s"
            self.out.append(text(X_TIME, y + 4, f"{self._rel(end):+.3f}", fill="#6b7280"))
            self.out.append(
                text((X["client"] + X["server"]) / 2, y + 4, words, text_anchor="middle", fill="#9ca3af")
            )
            self.points.append((end, y))
            self.y += 16
        axis = TimeAxis(self.points)
        for side, lane in lanes.items():
            self.out.append(draw_lane(lane, X[side], -1 if side == "client" else 1, axis, self.scene.t0))

    def _item(self, item: Item) -> None:
        if isinstance(item, LadderRow):
            self._row(item)
        elif isinstance(item, FaultRecord):
            self._fault(item)
        elif isinstance(item, Elision):
            self._elision(item)
        else:
            self._event(*item)

    def _rel(self, t: float) -> float:
        return t - self.scene.t0

    def _host_box(self, side: Side, x: float) -> str:
        end = self.scene.ends[side]
        box = rect(x - 120, 6, 240, 44, rx=6, fill="#f3f4f6", stroke="#9ca3af")
        shown = end.name if end.name == side else f"{end.name} ({side})"
        name = text(x, 22, shown, text_anchor="middle", font_weight="bold", font_size=13)
        detail = end.endpoint + (f" · {end.captures}" if end.captures else "")
        return box + name + text(x, 40, detail, text_anchor="middle", fill="#4b5563")

    def _gap(self, seconds: float) -> None:
        extra = min(40.0, 12 + 6 * math.log2(seconds / GAP_S))
        mid = self.y + extra / 2 + 4
        self.out.append(text(X_TIME, mid, f"⋯ {seconds:.3f} s", fill="#9ca3af", font_style="italic"))
        for x in X.values():
            self.out.append(line(x - 6, mid - 4, x + 6, mid - 4, stroke="#9ca3af", stroke_dasharray="2 2"))
        self.y += extra

    def _row(self, row: LadderRow) -> None:
        y = self.y
        cat = category(row)
        color = COLORS[cat]
        x1 = X[row.side]
        x2 = X["server" if row.side == "client" else "client"]
        classes = ["pkt", cat, *sorted(row.labels)]
        if row.delivered is False:
            classes.append("lost")
        if row.count > 1:
            classes.append("repeated")
        marks = mark_names(row.labels)
        out = [f'<g class="{" ".join(classes)}" data-frame="{esc(row.frame.file)}#{row.frame.frame}">']
        out.append(title(self._tooltip(row, marks)))
        width = 2.4 if cat in ("rst", "retransmission") else 1.4
        dash = "5 3" if cat == "probe" or row.delivered is False else None
        ya = y + 13
        style: dict[str, str | float | int | None] = {
            "stroke": color,
            "stroke_width": width,
            "stroke_dasharray": dash,
            "class_": "arrow",
        }
        if row.delivered is False:  # it never reached the receiver's capture: stop short, with a cross
            xe, ye = x1 + 0.72 * (x2 - x1), ya + DROP * 0.72
            cross = text(xe, ye + 4, "✕", text_anchor="middle", fill=COLORS["lost"], font_size=14)
            out += [line(x1, ya, xe, ye, **style), cross]
        else:
            out.append(line(x1, ya, x2, ya + DROP, marker_end=f"url(#ah-{cat})", **style))
        mid = (x1 + x2) / 2
        label = (
            f'<text x="{mid:.1f}" y="{y + 9:.1f}" text-anchor="middle" fill="{color}">{esc(row_label(row))}'
        )
        for mark in marks:
            label += f' <tspan font-weight="bold">[{esc(mark)}]</tspan>'
        out.append(label + "</text>")
        out.append(text(X_TIME, y + 16, f"{self._rel(row.time):+.3f}", fill="#374151"))
        out.append("</g>")
        self.out.append("".join(out))
        self._group_step(row)
        self.y += ROW_H

    def _group_step(self, row: LadderRow) -> None:
        """A repeated group gets a bracket on the client's left, with "xN" and how long it lasted."""
        if row.count > 1 and row.group_start:
            self.group = (self.y, row.period, row)
        if self.group is None:
            return
        top, left, first = self.group
        left -= 1
        self.group = (top, left, first)
        if left > 0:
            return
        self.group = None
        bottom = self.y + ROW_H - 2
        x = X["client"] - 16
        span = first.last_time - first.time
        path = f"M{x + 5:.1f},{top + 3:.1f} H{x:.1f} V{bottom:.1f} H{x + 5:.1f}"
        self.out.append(
            f'<g class="collapsed" data-count="{first.count}"><path d="{path}" fill="none" stroke="#111827"/>'
            + text(
                x - 6,
                (top + bottom) / 2 + 1,
                f"{TIMES}{first.count}",
                text_anchor="end",
                font_weight="bold",
                font_size=13,
            )
            + text(
                x - 6,
                (top + bottom) / 2 + 14,
                f"over {span:.2f} s",
                text_anchor="end",
                fill="#6b7280",
                font_size=10,
            )
            + "</g>"
        )

    def _tooltip(self, row: LadderRow, marks: list[str]) -> str:
        lines = [f"{row.frame.file} frame {row.frame.frame} at {self._rel(row.time):+.6f} s", row_label(row)]
        lines += [f"[{m}]" for m in marks]
        if row.count > 1:
            group = f"{row.period} segments" if row.period > 1 else "this segment"
            lines.append(
                f"{group} repeated {TIMES}{row.count} until {self._rel(row.last_time):+.3f} s"
                f" (last Seq={row.last_seq})"
            )
        receiver = self.scene.ends["server" if row.side == "client" else "client"]
        if row.delivered is False:
            lines.append(f"not in {receiver.name}'s capture: it never reached {receiver.name}")
        elif row.delivered:
            lines.append(f"in {receiver.name}'s capture too")
        return "\n".join(lines)

    def _fault(self, fault: FaultRecord) -> None:
        y = self.y + 2
        failed = fault.error is not None
        what = fault.detail or f"{fault.fault} on {fault.host}"
        words = (
            f"✗ {fault.fault} on {fault.host} failed: {fault.error}"
            if failed
            else f"⚡ {what} ({fault.fault})"
        )
        fill, stroke = ("#fee2e2", "#dc2626") if failed else ("#fef3c7", "#f59e0b")
        self.out.append(
            f'<g class="fault">{title(words)}'
            + rect(0, y, WIDTH, 20, fill=fill, stroke=stroke, fill_opacity=0.9)
            + text(X_TIME, y + 14, f"{self._rel(fault.in_effect):+.3f}", font_weight="bold")
            + text(
                X["client"] - 30,
                y + 14,
                _clip(
                    f"{words} at {self._rel(fault.in_effect):+.3f} s (asked {self._rel(fault.t):+.3f})", 110
                ),
                font_weight="bold",
                fill="#7c2d12",
            )
            + "</g>"
        )
        self.y += 26

    def _event(self, side: Side, event: AgentEvent) -> None:
        y = self.y + 10
        x = X[side]
        bad = event.event == "error"
        words = (
            event.event + (f" {event.errno}" if event.errno else "") + (f" ({event.op})" if event.op else "")
        )
        color = "#dc2626" if bad else "#0f766e"
        offset, anchor = (-10, "end") if side == "client" else (10, "start")
        self.out.append(
            f'<g class="app-event {esc(event.event)}">{title(f"{self.scene.ends[side].name} app: {words}")}'
            + f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}"/>'
            + text(
                x + offset,
                y + 4,
                f"app: {words}",
                text_anchor=anchor,
                fill=color,
                font_weight="bold" if bad else None,
            )
            + text(X_TIME, y + 4, f"{self._rel(event.t):+.3f}", fill="#6b7280")
            + "</g>"
        )
        self.y += 20

    def _elision(self, gap: Elision) -> None:
        y = self.y + 4
        words = (
            f"⋯ {gap.packets} segments not drawn, {self._rel(gap.first_time):+.3f} s to "
            f"{self._rel(gap.last_time):+.3f} s: open the capture for them ⋯"
        )
        self.out.append(
            '<g class="elision">'
            + rect(X["client"], y, X["server"] - X["client"], 20, fill="#f3f4f6", stroke="#d1d5db")
            + text((X["client"] + X["server"]) / 2, y + 14, words, text_anchor="middle", fill="#4b5563")
            + "</g>"
        )
        self.y += 34


def _span(item: Item) -> tuple[float, float]:
    if isinstance(item, LadderRow):
        return item.time, item.last_time
    if isinstance(item, FaultRecord):
        return item.in_effect, item.in_effect
    if isinstance(item, Elision):
        return item.first_time, item.last_time
    return item[1].t, item[1].t


def _clip(words: str, n: int) -> str:
    return words if len(words) <= n else words[: n - 1] + "…"
