"""Small helpers to write inline SVG by hand: no drawing library, nothing loaded from anywhere."""

from __future__ import annotations

import math
from html import escape

# Colours by what a segment is; the legend in the page uses the same names.
COLORS = {
    "data": "#1d4ed8",
    "ack": "#6b7280",
    "control": "#15803d",  # SYN, FIN
    "rst": "#dc2626",
    "retransmission": "#ea580c",
    "probe": "#7c3aed",  # keep-alive and zero-window probes
    "zero_window": "#0e7490",
    "out_of_order": "#a16207",
    "fault": "#b45309",
    "lost": "#dc2626",
}


TIMES = "\u00d7"  # the "xN" of a repeated group


def esc(text: str) -> str:
    return escape(text, quote=True)


def attrs(**kw: str | float | int | None) -> str:
    """SVG attributes; `class_` becomes class, `data_x` becomes data-x; None is left out."""
    out = []
    for key, value in kw.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        out.append(f'{name}="{esc(shown)}"')
    return " ".join(out)


def text(x: float, y: float, body: str, **kw: str | float | int | None) -> str:
    return f"<text {attrs(x=x, y=y, **kw)}>{esc(body)}</text>"


def line(x1: float, y1: float, x2: float, y2: float, **kw: str | float | int | None) -> str:
    return f"<line {attrs(x1=x1, y1=y1, x2=x2, y2=y2, **kw)}/>"


def rect(x: float, y: float, w: float, h: float, **kw: str | float | int | None) -> str:
    return f"<rect {attrs(x=x, y=y, width=w, height=h, **kw)}/>"


def title(body: str) -> str:
    """A tooltip: the browser shows it on hover, no script needed."""
    return f"<title>{esc(body)}</title>"


def arrow_markers() -> str:
    """One arrowhead per colour (SVG 1.1 markers cannot take the line's colour)."""
    out = ["<defs>"]
    for name, color in COLORS.items():
        out.append(
            f'<marker id="ah-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
        )
    out.append("</defs>")
    return "".join(out)


def svg_open(width: float, height: float, css_class: str, label: str) -> str:
    return (
        # Inline in HTML, an <svg> is in the SVG namespace without xmlns: the page names no URL at all.
        f'<svg class="{esc(css_class)}" role="img" '
        f'aria-label="{esc(label)}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}">'
    )


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k apart) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 9))
        v += step
    return ticks


def seconds(value: float) -> str:
    return f"{value:+.3f} s" if abs(value) < 100 else f"{value:+.1f} s"
