"""The time-sequence graph of one direction (Wireshark's "Stevens" graph), as inline SVG.

Sequence number (relative, bytes) against time: each data segment is a short vertical bar from
its first byte to its last, so new data climbs and a retransmission lands again on a height
already drawn; the gaps between those repeats are the backoff, visible at a glance. The
peer's acknowledgements are a grey step line; keep-alive probes are dots; faults are vertical
bands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.report.svg import COLORS, esc, line, nice_ticks, rect, svg_open, text, title
from orchestrator.run.records import FaultRecord
from orchestrator.tcp.connection import Side
from orchestrator.tcp.ladder import Ladder, SeqPoint

WIDTH, HEIGHT = 1180, 300
LEFT, RIGHT, TOP, BOTTOM = 78, 20, 28, 40
RETX = {"retransmission", "fast_retransmission", "spurious_retransmission"}
PROBES = {"keep_alive", "zero_window_probe"}

Fx = Callable[[float], float]  # a scale: value to pixel


@dataclass
class GraphScene:
    ladder: Ladder
    t0: float
    side: Side
    names: dict[Side, str]
    faults: list[FaultRecord] = field(default_factory=list)


def sides_with_data(ladder: Ladder) -> list[Side]:
    """Directions worth a graph: those that sent data or probes."""
    sides: list[Side] = ["client", "server"]
    return [s for s in sides if any(p.side == s and (p.length or p.labels & PROBES) for p in ladder.points)]


def draw_time_sequence(scene: GraphScene) -> str:
    pts = scene.ladder.points
    mine = [p for p in pts if p.side == scene.side]
    acks = [p for p in pts if p.side != scene.side and p.ack is not None]
    times = [p.time - scene.t0 for p in pts] + [
        f.in_effect - scene.t0 for f in scene.faults if f.error is None
    ]
    t_lo, t_hi = min(times), max(times)
    if t_hi - t_lo < 1e-3:
        t_hi = t_lo + 1e-3
    seqs = [p.seq for p in mine] + [p.seq + p.length for p in mine] + [a.ack or 0 for a in acks]
    s_lo, s_hi = float(min(seqs)), float(max(seqs))
    if s_hi - s_lo < 10:
        s_hi = s_lo + 10
    margin = (s_hi - s_lo) * 0.04  # the top bar and the probes at the bottom stay off the frame
    s_lo, s_hi = s_lo - margin, s_hi + margin
    pad_t = (t_hi - t_lo) * 0.02
    t_lo, t_hi = t_lo - pad_t, t_hi + pad_t
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def fx(t: float) -> float:
        return LEFT + (t - t_lo) / (t_hi - t_lo) * w

    def fy(s: float) -> float:
        return TOP + h - (s - s_lo) / (s_hi - s_lo) * h

    peer: Side = "server" if scene.side == "client" else "client"
    caption = f"{scene.names[scene.side]} → {scene.names[peer]}: sequence number (bytes) against time"
    out = [svg_open(WIDTH, HEIGHT, "time-sequence", caption), '<g font-family="sans-serif" font-size="11">']
    out.append(rect(LEFT, TOP, w, h, fill="#ffffff", stroke="#d1d5db"))
    out.append(text(LEFT, 16, caption, font_weight="bold", font_size=12))
    for t in nice_ticks(t_lo, t_hi, 10):
        out.append(line(fx(t), TOP, fx(t), TOP + h, stroke="#f3f4f6"))
        out.append(text(fx(t), TOP + h + 16, f"{t:g} s", text_anchor="middle", fill="#4b5563"))
    for s in nice_ticks(s_lo, s_hi, 6):
        out.append(line(LEFT, fy(s), LEFT + w, fy(s), stroke="#f3f4f6"))
        out.append(text(LEFT - 6, fy(s) + 4, _bytes(s), text_anchor="end", fill="#4b5563"))
    out.append(
        text(LEFT + w / 2, HEIGHT - 6, "time since traffic started", text_anchor="middle", fill="#6b7280")
    )
    for f in scene.faults:
        if f.error is None and t_lo <= f.in_effect - scene.t0 <= t_hi:
            x = fx(f.in_effect - scene.t0)
            out.append(
                f'<g class="fault">{title(f.detail or f.fault)}'
                + line(x, TOP, x, TOP + h, stroke=COLORS["fault"], stroke_width=1.5, stroke_dasharray="6 3")
                + text(x + 4, TOP + 12, f.detail or f.fault, fill=COLORS["fault"], font_weight="bold")
                + "</g>"
            )
    out.append(_ack_line(acks, scene.t0, fx, fy))
    for p in mine:
        out.append(_point(p, scene.t0, fx, fy))
    out.append("</g></svg>")
    return "".join(out)


def _ack_line(acks: list[SeqPoint], t0: float, fx: Fx, fy: Fx) -> str:
    if not acks:
        return ""
    d = [f"M{fx(acks[0].time - t0):.1f},{fy(acks[0].ack or 0):.1f}"]
    for a in acks[1:]:
        d.append(f"H{fx(a.time - t0):.1f} V{fy(a.ack or 0):.1f}")
    return f'<path class="acks" d="{" ".join(d)}" fill="none" stroke="#9ca3af" stroke-width="1.2"/>'


def _point(p: SeqPoint, t0: float, fx: Fx, fy: Fx) -> str:
    x = fx(p.time - t0)
    tip = title(f"{p.time - t0:+.6f} s Seq={p.seq} Len={p.length} {' '.join(sorted(p.labels))}".strip())
    if p.labels & PROBES:
        dot = f'cx="{x:.1f}" cy="{fy(p.seq):.1f}" r="3.5" fill="{COLORS["probe"]}"'
        return f'<circle class="seg probe" {dot}>{tip}</circle>'
    if not p.length:
        return ""
    kind = "retransmission" if p.labels & RETX else "data"
    color = COLORS[kind]
    y1, y2 = fy(p.seq), fy(p.seq + p.length)
    if y1 - y2 < 3:  # keep tiny segments visible
        y1, y2 = y1 + 1.5, y2 - 1.5
    width = 2.6 if kind == "retransmission" else 1.6
    return (
        f'<g class="seg {esc(kind)}">{tip}'
        + line(x, y1, x, y2, stroke=color, stroke_width=width)
        + line(x - 2.5, y2, x + 2.5, y2, stroke=color, stroke_width=width)
        + "</g>"
    )


def _bytes(value: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"
