"""The HTML parts of a run's report around the diagrams: header, verdict, kernel model, apps."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.report.runview import RunView
from orchestrator.report.svg import COLORS, TIMES, esc
from orchestrator.run.records import AgentEvent, FaultRecord


def badge(passed: bool) -> str:
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def annotated_name(capture: str) -> str:
    """client.pcap -> client.annotated.pcapng: the capture with the faults as packet comments."""
    stem = capture.rsplit(".", 1)[0]
    return f"{stem}.annotated.pcapng"


def run_header(view: RunView, t0: float) -> str:
    result = badge(view.passed) if view.has_verdict else '<span class="badge none">NO VERDICT</span>'
    started = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    count = (
        f" · {sum(c.passed for c in view.checks)}/{len(view.checks)} expectations" if view.has_verdict else ""
    )
    out = [f"<header><h1>{result} {esc(view.scenario)}</h1>"]
    if view.description:
        out.append(f'<p class="desc">{esc(view.description)}</p>')
    out.append(
        f'<p class="meta">run directory <code>{esc(str(view.run_dir))}</code> · traffic started {started} '
        f"(times below are seconds from then){count}</p>"
    )
    out.append(
        '<table class="hosts"><tr><th>host</th><th>role</th><th>address</th><th>captures</th>'
        "<th>with the faults as comments (Wireshark)</th></tr>"
    )
    for h in view.hosts:
        caps = ", ".join(f'<a href="{esc(c)}">{esc(c)}</a>' for c in h.captures)
        notes = [annotated_name(c) for c in h.captures if (view.run_dir / annotated_name(c)).exists()]
        ann = ", ".join(f'<a href="{esc(n)}">{esc(n)}</a>' for n in notes) or "-"
        out.append(
            f"<tr><td><b>{esc(h.name)}</b></td><td>{esc(h.role)}</td><td>{esc(h.address or '?')}</td>"
            f"<td>{caps}</td><td>{ann}</td></tr>"
        )
    out.append("</table>")
    if view.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in view.notes) + "</ul>")
    out.append("</header>")
    return "".join(out)


def verdict_table(view: RunView, t0: float) -> str:
    rows = []
    for c in view.checks:
        evidence = "".join(f"<li>{esc(e)}</li>" for e in c.evidence)
        rows.append(
            f'<tr class="{"pass" if c.passed else "fail"}"><td>{badge(c.passed)}</td>'
            f"<td><code>{esc(c.name)}</code></td>"
            f"<td>{esc(c.expected)}</td><td>{esc(c.observed)}</td><td><ul>{evidence}</ul></td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="5">The scenario expects nothing.</td></tr>')
    return (
        '<section id="verdict"><h2>Verdict</h2><table class="verdict"><tr><th></th><th>expectation</th>'
        "<th>expected</th><th>observed</th><th>evidence (capture#frame, time)</th></tr>"
        + "".join(rows)
        + "</table></section>"
    )


def model_table(view: RunView, t0: float) -> str:
    if not view.predictions:
        return (
            '<section id="model"><h2>Kernel model</h2><p class="note">No prediction: no host had '
            "unacknowledged data at the end, and none had keepalive on.</p></section>"
        )
    rows = []
    for host, p in view.predictions.items():
        where = f"{p.start_frame.file}#{p.start_frame.frame}" if p.start_frame else p.start
        by = "at most " if p.upper_bound else ""  # the budget may have started before the capture
        predicted = f"{by}{p.predicted_s:.3f} s after {where}, at {p.at - t0:+.3f} s"
        if p.beyond_capture:
            predicted += " (after the observation ended)"
        app = view.apps.get(host)
        if app is None or app.t is None:
            seen, off = "the app saw nothing", "-"
        else:
            took = app.t - p.start_time
            seen = f"{esc(app.sees)} at {app.t - t0:+.3f} s ({took:.3f} s after)"
            off = (
                f"{(took - p.predicted_s) / p.predicted_s:+.1%}"
                if p.predicted_s
                else f"{took * 1000:+.1f} ms"
            )
            if app.sees != p.app_error:  # the model says what the app is told: this one was told otherwise
                seen += f", not the modelled {esc(p.app_error)}"
                off = "-"
        rows.append(
            f"<tr><td><b>{esc(host)}</b></td><td>{esc(p.kind)}</td><td>{esc(predicted)}</td><td>{seen}</td>"
            f"<td>{off}</td><td>{esc(p.basis)}</td></tr>"
        )
    return (
        '<section id="model"><h2>Kernel model beside the observation</h2><table class="model"><tr>'
        "<th>host</th><th>model</th><th>predicted end</th><th>the app saw</th><th>off by</th>"
        "<th>from the settings</th></tr>" + "".join(rows) + "</table></section>"
    )


def apps_table(view: RunView, t0: float) -> str:
    out = ['<section id="apps"><h2>What each app saw</h2><ul class="outcomes">']
    for host, app in view.apps.items():
        when = f" at {app.t - t0:+.3f} s" if app.t is not None else ""
        detail = f" ({esc(app.detail)})" if app.detail else ""
        out.append(f"<li><b>{esc(host)}</b>: {esc(app.sees)}{when}{detail}</li>")
    for host, words in _traffic(view.events).items():
        out.append(f"<li><b>{esc(host)}</b> {esc(words)}</li>")
    out.append('</ul><table class="events"><tr><th>time</th><th>host</th><th>what</th><th>detail</th></tr>')
    items: list[AgentEvent | FaultRecord] = [*view.shown_events(), *view.faults]
    for item in sorted(items, key=lambda x: x.in_effect if isinstance(x, FaultRecord) else x.t):
        if isinstance(item, FaultRecord):
            what = f"⚡ fault: {item.fault}"
            detail = f"failed: {item.error}" if item.error else item.detail
            if item.in_effect - item.t >= 0.001:
                detail += f" (asked at {item.t - t0:+.3f})"
            out.append(
                f'<tr class="fault"><td>{item.in_effect - t0:+.3f}</td><td>{esc(item.host)}</td>'
                f"<td>{esc(what)}</td><td>{esc(detail)}</td></tr>"
            )
        else:
            out.append(_event_row(item, t0))
    out.append("</table></section>")
    return "".join(out)


def _event_row(e: AgentEvent, t0: float) -> str:
    bits = [
        f"{k}={v}" for k, v in (("errno", e.errno), ("op", e.op), ("local", e.local), ("peer", e.peer)) if v
    ]
    message = e.extra.get("message")
    if isinstance(message, str):
        bits.append(message)
    cls = ' class="error"' if e.event == "error" else ""
    return (
        f"<tr{cls}><td>{e.t - t0:+.3f}</td><td>{esc(e.host)}</td><td>{esc(e.event)}</td>"
        f"<td>{esc(' '.join(bits))}</td></tr>"
    )


def _traffic(events: list[AgentEvent]) -> dict[str, str]:
    """Sends and receives are too many to list: a count and a byte total per host."""
    out: dict[str, str] = {}
    for host in sorted({e.host for e in events}):
        words = []
        for kind in ("sent", "received"):
            mine = [e for e in events if e.host == host and e.event == kind]
            if mine:
                total = sum(int(b) for e in mine if isinstance(b := e.extra.get("bytes"), int))
                words.append(f"{kind} {len(mine)} times ({total} bytes)")
        if words:
            out[host] = " and ".join(words)
    return out


def legend() -> str:
    def swatch(name: str, words: str, dash: bool = False) -> str:
        style = f"border-top: 3px {'dashed' if dash else 'solid'} {COLORS[name]}"
        return f'<span class="key"><span class="swatch" style="{style}"></span>{esc(words)}</span>'

    return (
        '<p class="legend">'
        + swatch("data", "data")
        + swatch("ack", "ACK")
        + swatch("control", "SYN / FIN")
        + swatch("rst", "RST")
        + swatch("retransmission", "retransmission")
        + swatch("probe", "keep-alive / window probe", dash=True)
        + swatch("zero_window", "zero window")
        + '<span class="key"><b style="color:#dc2626">✕</b> not in the receiver\'s capture</span>'
        + '<span class="key"><span class="band"></span>fault</span>'
        + '<span class="key"><b style="color:#0f766e">●</b> app event</span>'
        + f'<span class="key"><b>{TIMES}N</b> the same exchange N times</span>'
        + "</p>"
    )


def connections_table(view: RunView, t0: float) -> str:
    """Every connection of the run in one table: its ends, how it ended, its retransmissions
    and probes, and each end's predicted fate beside what was observed. Rows link to the
    connection's diagram when it is drawn."""
    if len(view.connections) < 2:
        return ""
    rows = []
    for c in view.connections:
        hosts = c.get("hosts") or {}
        client, server = hosts.get("client") or "?", hosts.get("server") or "?"
        ends = f"{esc(client)} {esc(c['client'])} → {esc(server)} {esc(c['server'])}"
        close = esc(c["close"]) + (f" by {esc(c['rst_from'])}" if c.get("rst_from") else "")
        retx = "/".join(str(c["retransmissions"][s]) for s in ("client", "server"))
        probes = "/".join(str(c["keepalive_probes"][s]) for s in ("client", "server"))
        fates = []
        for p in c.get("predictions", []):
            at = p["from"]["time"] + p["predicted_s"]
            window = p.get("observed_window_s")
            if p.get("observed_s") is not None:
                seen = f"{p['from']['time'] + p['observed_s'] - t0:+.3f} s"
            elif window:  # the packets bound the end, they do not show it
                lo, hi = (p["from"]["time"] + w - t0 for w in window)
                seen = f"between {lo:+.3f} and {hi:+.3f} s"
            else:
                seen = "-"
            by = "by " if p.get("upper_bound") else ""
            fates.append(f"{esc(p['side'])}: {esc(p['kind'])} {by}{at - t0:+.3f} s (observed {seen})")
        link = f'<a href="#stream-{c["stream"]}">{c["stream"]}</a>'
        rows.append(
            f"<tr><td>{link}</td><td>{ends}</td><td>{close}</td><td>{retx}</td><td>{probes}</td>"
            f"<td>{'<br>'.join(fates) or '-'}</td></tr>"
        )
    return (
        f'<section id="connections"><h2>Connections <small>{len(view.connections)}</small></h2>'
        '<table class="connections"><tr><th>stream</th><th>client → server</th><th>end</th>'
        "<th>retransmissions c/s</th><th>keep-alives c/s</th><th>kernel model: predicted (observed)</th></tr>"
        + "".join(rows)
        + "</table></section>"
    )
