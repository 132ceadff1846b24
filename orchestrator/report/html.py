"""report.html: one self-contained page (inline CSS and SVG, no script, nothing fetched), opened
from disk. For a run: the verdict, the kernel model beside the observation, and for each
connection its ladder diagram and time-sequence graphs, with the faults and what each app saw on
the same timeline. For any capture (`tcpscen analyze --html`): the diagrams alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from orchestrator.report import sections
from orchestrator.report.ladder_svg import End, LadderScene, draw_ladder
from orchestrator.report.runview import RunView
from orchestrator.report.seqgraph import GraphScene, draw_time_sequence, sides_with_data
from orchestrator.report.state_lane import lane_legend, lanes_for, run_timelines
from orchestrator.report.style import STYLE
from orchestrator.report.svg import esc
from orchestrator.run.records import AgentEvent
from orchestrator.tcp.connection import Side
from orchestrator.tcp.ladder import Ladder, capture_ladders, run_ladders

MAX_CONNECTIONS = 12  # drawn per page; the others are listed


def run_ladders_of(view: RunView) -> list[Ladder]:
    """The run's connections; with a host's address unknown (an old or broken run directory),
    each capture is drawn on its own instead."""
    # A repeated group never spans a fault or an app's event: the diagram shows them in place.
    breaks = [f.in_effect for f in view.faults] + [e.t for e in view.shown_events()]
    if view.addresses_known and view.sources():
        return run_ladders(view.sources(), breaks)
    return [lad for h in view.hosts for f in h.captures for lad in capture_ladders(view.run_dir / f)]


def render_run(view: RunView, ladders: list[Ladder]) -> str:
    ordered = sorted(ladders, key=lambda lad: (lad.stream != view.stream, lad.stream))
    t0 = view.t0 if view.t0 is not None else _first_time(ladders)
    body = [sections.run_header(view, t0)]
    if view.has_verdict:
        body.append(sections.verdict_table(view, t0))
        body.append(sections.connections_table(view, t0))
        body.append(sections.model_table(view, t0))
    else:
        body.append('<p class="warn">No verdict.json in this run directory: the run did not finish.</p>')
    timelines = run_timelines(view.run_dir, [h.name for h in view.hosts], view.t_end)
    for i, ladder in enumerate(ordered[:MAX_CONNECTIONS]):
        scene = LadderScene(ladder, t0, _ends(view, ladder), list(view.faults), _events_by_side(view, ladder))
        scene.lanes = lanes_for(
            timelines, {s: (e.name, e.endpoint, _peer(scene, s)) for s, e in scene.ends.items()}
        )
        body.append(_connection(scene, primary=i == 0))
    body.append(_omitted(ordered))
    body.append(sections.apps_table(view, t0))
    return page(f"tcpscen: {view.scenario} {'PASS' if view.passed else 'FAIL'}", body)


def render_captures(files: list[tuple[str, list[Ladder]]]) -> str:
    body = ["<header><h1>Capture report</h1>"]
    body.append("<p>" + ", ".join(esc(name) for name, _ in files) + "</p></header>")
    for name, ladders in files:
        body.append(f"<h2>{esc(name)}: {len(ladders)} connection{'s' if len(ladders) != 1 else ''}</h2>")
        t0 = _first_time(ladders)
        for i, ladder in enumerate(ladders[:MAX_CONNECTIONS]):
            ends: dict[Side, End] = {
                "client": End("client", ladder.client),
                "server": End("server", ladder.server),
            }
            body.append(_connection(LadderScene(ladder, t0, ends), primary=i == 0))
        body.append(_omitted(ladders))
    return page("tcpscen: " + ", ".join(name for name, _ in files), body)


def render_run_report(view: RunView) -> str:
    """The run's page, whole (the run directory writes it: `rundir.RunDir`)."""
    return render_run(view, run_ladders_of(view))


def write_capture_report(pcaps: list[Path], out: Path) -> Path:
    """The ladder diagram and time-sequence graphs of any captures, each file drawn on its own
    (one capture point each: all its segments, in its order). Raises CaptureFormatError for a
    file that is not a capture."""
    files = [(p.name, capture_ladders(p)) for p in pcaps]
    out.write_text(render_captures(files))
    return out


def page(title: str, body: list[str]) -> str:
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + f"<footer>made by tcpscen at {made}. Hover an arrow for its frame; the frame numbers are "
        "Wireshark's.</footer></body></html>\n"
    )


def _connection(scene: LadderScene, primary: bool) -> str:
    lad = scene.ladder
    head = (
        f"Connection {esc(lad.client)} → {esc(lad.server)} "
        f"<small>tcp.stream {lad.stream} · {lad.packets} segments</small>"
    )
    parts = [sections.legend(), f'<div class="scroll">{draw_ladder(scene)}</div>']
    if scene.lanes:
        parts.insert(1, lane_legend())
    names = {side: end.name for side, end in scene.ends.items()}
    graphs = [
        draw_time_sequence(
            GraphScene(lad, scene.t0, side, names, [f for f in scene.faults if f.error is None])
        )
        for side in sides_with_data(lad)
    ]
    if graphs:
        parts.append("<h3>Time-sequence graph</h3>")
        if lad.thinned:
            parts.append(
                '<p class="note">A long capture: ordinary segments are thinned out, marked ones are '
                "all drawn.</p>"
            )
        parts += [f'<div class="scroll">{g}</div>' for g in graphs]
    inner = "<h3>Ladder diagram</h3>" + "".join(parts)
    cls = f'class="connection" id="stream-{lad.stream}"'
    if primary:
        return f"<section {cls}><h2>{head}</h2>{inner}</section>"
    return f"<details {cls}><summary><h2>{head}</h2></summary>{inner}</details>"


def _peer(scene: LadderScene, side: Side) -> str:
    return scene.ends["server" if side == "client" else "client"].endpoint


def _omitted(ladders: list[Ladder]) -> str:
    rest = ladders[MAX_CONNECTIONS:]
    if not rest:
        return ""
    items = "".join(
        f"<li>stream {lad.stream}: {esc(lad.client)} → {esc(lad.server)}, {lad.packets} segments</li>"
        for lad in rest
    )
    return f'<p class="note">{len(rest)} more connections, not drawn:</p><ul>{items}</ul>'


def _ends(view: RunView, ladder: Ladder) -> dict[Side, End]:
    ends: dict[Side, End] = {}
    pairs: list[tuple[Side, str]] = [("client", ladder.client), ("server", ladder.server)]
    for side, endpoint in pairs:
        ip = endpoint.rsplit(":", 1)[0]
        host = next((h for h in view.hosts if h.address == ip), None)
        ends[side] = End(host.name, endpoint, ", ".join(host.captures)) if host else End(side, endpoint)
    return ends


def _events_by_side(view: RunView, ladder: Ladder) -> dict[Side, list[AgentEvent]]:
    ends = _ends(view, ladder)
    out: dict[Side, list[AgentEvent]] = {}
    for side, end in ends.items():
        out[side] = [e for e in view.shown_events() if e.host == end.name]
    return out


def _first_time(ladders: list[Ladder]) -> float:
    times = [lad.rows[0].time for lad in ladders if lad.rows]
    return min(times) if times else 0.0
