"""A sweep's index.html: self-contained like report.html (inline CSS and SVG, no script, nothing
fetched). A table of the runs (values, verdict, each host's predicted and observed end, a link
to each run's report), then per host a plot of the end against the swept setting: the kernel
model's curve over the whole range, each run's prediction and what its capture and app showed."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.report.html import page
from orchestrator.report.svg import esc, line, nice_ticks, rect, svg_open, text, title
from orchestrator.report.sweep import Curve, HostEnd, Row, Summary

WIDTH, HEIGHT = 820, 380
LEFT, RIGHT, TOP, BOTTOM = 70, 24, 34, 54
PALETTE = ("#1d4ed8", "#15803d", "#b45309", "#7c3aed", "#0e7490", "#be185d")
OBSERVED = "#dc2626"
APP = "#111827"

Fx = Callable[[float], float]  # a scale: value to pixel


def render_index(s: Summary) -> str:
    passed = sum(1 for r in s.rows if r.verdict == "PASS")
    badge = "pass" if passed == len(s.rows) else "fail"
    keys = ", ".join(f"<code>{esc(k)}</code>" for k in s.keys)
    body = [
        f'<header><h1>{esc(s.name)} <span class="badge {badge}">{passed}/{len(s.rows)} PASS</span></h1>',
        f'<p class="desc">A sweep of {keys}: {len(s.rows)} runs, from <code>{esc(s.file)}</code>.</p>',
        "</header>",
        _table(s),
    ]
    if s.x_key is None:
        body.append('<p class="note">No plot: no swept key takes numbers that differ between the runs.</p>')
    else:
        # A host whose end no run saw (the model's end after each run ended) gets no plot.
        for host in sorted({h for r in s.rows for h, e in r.ends.items() if _seen(e)}):
            body.append(
                f'<section class="plot"><h2>{esc(host)}: its end against {esc(s.shorts[s.x_key])}</h2>'
                f'<div class="scroll">{draw_plot(s, host)}</div>{_legend(s, host)}</section>'
            )
    return page(f"tcpscen sweep: {s.name}", body)


def _table(s: Summary) -> str:
    hosts = sorted({h for r in s.rows for h in r.ends})
    head = "".join(f"<th>{esc(s.shorts[k])}</th>" for k in s.keys) + "<th>verdict</th>"
    head += "".join(
        f"<th>{esc(h)}: model</th><th>predicted</th><th>observed</th><th>off by</th><th>the app</th>"
        for h in hosts
    )
    out = [f'<table class="sweep"><tr>{head}<th>run</th></tr>']
    for r in s.rows:
        cls = "" if r.verdict == "PASS" else ' class="fail"'
        cells = "".join(f"<td><code>{esc(_shown(r.values[k]))}</code></td>" for k in s.keys)
        mark = {"PASS": "pass", "FAIL": "fail"}.get(r.verdict, "none")
        detail = f"{r.passed}/{r.checks}" if r.verdict != "ERROR" else esc((r.error or "")[:200])
        if r.failed:
            detail += ": " + esc(", ".join(r.failed))
        cells += f'<td><span class="badge {mark}">{r.verdict}</span> {detail}</td>'
        for h in hosts:
            cells += _end_cells(r.ends.get(h))
        link = f'<a href="{esc(r.report)}">report</a>' if r.report else f"<code>{esc(r.run_dir)}</code>"
        out.append(f"<tr{cls}>{cells}<td>{link}</td></tr>")
    out.append("</table>")
    out.append(
        '<p class="note">Times are seconds after what each model counts from ('
        + "; ".join(f"{esc(k)}: {esc(v)}" for k, v in s.starts.items())
        + "). Observed: the kernel's end as the capture shows it; the app: when it was told.</p>"
    )
    return "".join(out)


def _end_cells(e: HostEnd | None) -> str:
    if e is None:
        return "<td>-</td>" * 5
    observed = f"{e.observed_s:.3f} s" if e.observed_s is not None else "not seen"
    if e.observed_s is None and e.observed_window is not None:
        observed = f"between {e.observed_window[0]:.3f} and {e.observed_window[1]:.3f} s"
    elif e.observed_s is None and e.beyond_capture:
        observed = "after the run ended"
    off = f"{e.deviation:+.1%}" if e.deviation is not None else "-"
    if e.within_tolerance is not None:
        off += " ✓" if e.within_tolerance else " ✗ beyond the tolerance"
    app = f"{esc(e.app_sees or '')} at {e.app_s:.3f} s" if e.app_s is not None else esc(e.app_sees or "-")
    return (
        f"<td>{esc(e.kind)}</td><td>{e.predicted_s:.3f} s</td><td>{observed}</td><td>{off}</td><td>{app}</td>"
    )


def draw_plot(s: Summary, host: str) -> str:
    """The end against the swept setting, for one host: the model's curve (and an RTO abort's
    budget, dashed), each run's prediction (a ring), its observed end (a dot), its app (a cross)."""
    assert s.x_key is not None
    curves = [c for c in s.curves if c.host == host]
    rows = [r for r in s.rows if host in r.ends and r.settings[s.x_key] is not None]
    xs = [x for c in curves for x, _ in c.points] + [_x(r, s.x_key) for r in rows]
    ys = [y for c in curves for _, y in [*c.points, *c.budget]]
    for r in rows:
        e = r.ends[host]
        ys += [v for v in (e.predicted_s, e.observed_s, e.app_s) if v is not None]
    if not xs or not ys:
        return '<p class="note">Nothing to plot.</p>'
    x_lo, x_hi = min(xs), max(xs)
    pad = (x_hi - x_lo) * 0.06 or 1.0
    x_lo, x_hi = x_lo - pad, x_hi + pad
    y_lo, y_hi = 0.0, max(ys) * 1.08 or 1.0
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def fx(x: float) -> float:
        return LEFT + (x - x_lo) / (x_hi - x_lo) * w

    def fy(y: float) -> float:
        return TOP + h - (y - y_lo) / (y_hi - y_lo) * h

    kinds = sorted({r.ends[host].kind for r in rows})
    since = s.starts.get(kinds[0], "its start") if len(kinds) == 1 else "each model's start"
    caption = f"{host}: when its kernel gives up ({', '.join(kinds)}), against {s.shorts[s.x_key]}"
    out = [svg_open(WIDTH, HEIGHT, "sweep-plot", caption), '<g font-family="sans-serif" font-size="11">']
    out.append(rect(LEFT, TOP, w, h, fill="#ffffff", stroke="#d1d5db"))
    out.append(text(LEFT, 18, caption, font_weight="bold", font_size=12))
    whole = all(float(x).is_integer() for x in xs) and x_hi - x_lo <= 40
    ticks = [float(t) for t in range(int(x_lo) + 1, int(x_hi) + 1)] if whole else nice_ticks(x_lo, x_hi, 8)
    for t in ticks:
        out.append(line(fx(t), TOP, fx(t), TOP + h, stroke="#f3f4f6"))
        out.append(text(fx(t), TOP + h + 16, f"{t:g}", text_anchor="middle", fill="#4b5563"))
    for t in nice_ticks(y_lo, y_hi, 6):
        out.append(line(LEFT, fy(t), LEFT + w, fy(t), stroke="#f3f4f6"))
        out.append(text(LEFT - 6, fy(t) + 4, f"{t:g} s", text_anchor="end", fill="#4b5563"))
    out.append(text(LEFT + w / 2, HEIGHT - 12, s.x_key, text_anchor="middle", fill="#374151"))
    out.append(
        f'<text transform="translate(16 {TOP + h / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="#374151">seconds after {esc(since)}</text>'
    )
    for i, c in enumerate(curves):
        out.append(_curve(c, PALETTE[i % len(PALETTE)], fx, fy))
    for r in rows:
        color = PALETTE[_group(curves, r) % len(PALETTE)]
        out.append(_marks(r, host, s.x_key, color, fx, fy))
    out.append("</g></svg>")
    return "".join(out)


def _curve(c: Curve, color: str, fx: Fx, fy: Fx) -> str:
    held = ", ".join(f"{k}={_shown(v)}" for k, v in c.held.items())
    what = f"the kernel model ({c.kind}{', RTO ' + format(c.rto_s, '.3f') + ' s' if c.rto_s else ''})"
    out = [f'<g class="curve" data-kind="{esc(c.kind)}">{title(what + (": " + held if held else ""))}']
    if c.budget:
        pts = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in c.budget)
        out.append(
            f'<polyline class="budget" points="{pts}" fill="none" stroke="{color}" stroke-width="1" '
            'stroke-dasharray="5 4" opacity="0.7"/>'
        )
    if c.points:
        pts = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in c.points)
        out.append(f'<polyline class="model" points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(c.points) <= 60:  # a model of whole values: a dot where it is defined
            out += [
                f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="2.2" fill="{color}"/>' for x, y in c.points
            ]
    out.append("</g>")
    return "".join(out)


def _marks(r: Row, host: str, x_key: str, color: str, fx: Fx, fy: Fx) -> str:
    e = r.ends[host]
    x = fx(_x(r, x_key))
    tip = f"{r.label}: predicted {e.predicted_s:.3f} s"
    if e.observed_s is not None:
        tip += f", observed {e.observed_s:.3f} s"
    if e.app_s is not None:
        tip += f", the app told {e.app_sees} at {e.app_s:.3f} s"
    out = [f'<g class="run">{title(tip)}']
    out.append(
        f'<circle class="point predicted" cx="{x:.1f}" cy="{fy(e.predicted_s):.1f}" r="7" fill="none" '
        f'stroke="{color}" stroke-width="2"/>'
    )
    if e.observed_s is not None:
        out.append(
            f'<circle class="point observed" cx="{x:.1f}" cy="{fy(e.observed_s):.1f}" r="3.8" '
            f'fill="{OBSERVED}"/>'
        )
    if e.app_s is not None:
        y = fy(e.app_s)
        out.append(
            f'<path class="point app" d="M{x - 4:.1f},{y - 4:.1f} L{x + 4:.1f},{y + 4:.1f} '
            f'M{x - 4:.1f},{y + 4:.1f} L{x + 4:.1f},{y - 4:.1f}" stroke="{APP}" stroke-width="1.4"/>'
        )
    out.append("</g>")
    return "".join(out)


def _legend(s: Summary, host: str) -> str:
    items = []
    curves = [c for c in s.curves if c.host == host]
    for i, c in enumerate(curves):
        color = PALETTE[i % len(PALETTE)]
        held = ", ".join(f"{s.shorts.get(k, k)}={_shown(v)}" for k, v in c.held.items())
        rto = f", RTO {c.rto_s:.3f} s at the first retransmission" if c.rto_s else ""
        label = f"the kernel model: {c.kind}{rto}" + (f" ({held})" if held else "")
        swatch = f'<span class="swatch" style="border-top:2px solid {color}"></span>'
        items.append(f'<span class="key">{swatch}{esc(label)}</span>')
        if c.budget:
            items.append(
                f'<span class="key"><span class="swatch" style="border-top:1px dashed {color}"></span>'
                "the budget (the abort is the first timer expiry at or past it)</span>"
            )
        if c.note:
            items.append(f'<span class="key">{esc(c.note)}</span>')
    items.append('<span class="key">◯ the model\'s prediction for the run</span>')
    items.append(f'<span class="key"><span style="color:{OBSERVED}">●</span> observed in the capture</span>')
    items.append('<span class="key">✕ when the app was told</span>')
    return '<div class="legend">' + "".join(items) + "</div>"


def _seen(e: HostEnd) -> bool:
    return e.observed_s is not None or e.app_s is not None


def _group(curves: list[Curve], r: Row) -> int:
    return next((i for i, c in enumerate(curves) if all(r.values.get(k) == v for k, v in c.held.items())), 0)


def _x(r: Row, key: str) -> float:
    return r.settings[key] or 0.0


def _shown(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
