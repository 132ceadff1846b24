"""The socket state lanes beside the ladder's lines, from recorded runs' samples."""

from __future__ import annotations

import re
import time
from pathlib import Path

from orchestrator.report import html
from orchestrator.report.ladder_svg import X
from orchestrator.report.runview import load_view
from orchestrator.report.state_lane import TimeAxis, lane_of
from orchestrator.verdict.socket_timeline import load_timeline
from tests.helpers.recorded_runs import replay


def test_the_axis_follows_the_drawing_and_never_goes_back_up() -> None:
    axis = TimeAxis([(1.0, 100.0), (2.0, 200.0), (1.5, 120.0), (3.0, 150.0)])  # a group's rows overlap
    assert axis.y(0.0) == 100.0 and axis.y(9.0) == 200.0  # clamped
    assert axis.y(1.25) == 110.0
    ys = [axis.y(t / 10) for t in range(0, 40)]
    assert ys == sorted(ys)
    assert TimeAxis([]).y(5.0) == 0.0


def test_a_lane_is_one_span_per_state_and_timer_and_ends_where_the_socket_went(tmp_path: Path) -> None:
    run = replay("power_cut", tmp_path)
    conn = run.connections[0]
    timeline = load_timeline(run.run_dir / "client.sockets.jsonl", "client")
    lane = lane_of("client", timeline.file, timeline.of(conn.client, conn.server))
    assert lane is not None
    assert [(s.state, s.timer) for s in lane.spans] == [("ESTAB", "none"), ("ESTAB", "on")]
    first, on = lane.spans
    assert first.end == on.first.t and on.last.retrans_total == 5
    assert lane.gone is not None and lane.gone > on.last.t and not lane.kernel_gone
    rebooted = replay("reboot_rst", tmp_path / "r")
    server = load_timeline(rebooted.run_dir / "server.sockets.jsonl", "server")
    c = rebooted.connections[0]
    (old,) = server.of(c.server, c.client)
    gone_with_kernel = lane_of("server", server.file, [old])
    assert gone_with_kernel is not None and gone_with_kernel.kernel_gone
    # The band stops at the old kernel's last sample, not at the new kernel's first.
    assert gone_with_kernel.gone == old.last.t == gone_with_kernel.spans[-1].end


def lane_rects(page: str) -> list[tuple[float, str]]:
    return [(float(x), cls) for x, cls in re.findall(r'<rect x="([\d.]+)" [^>]*class="lane ([A-Z-]+)"', page)]


def test_the_report_draws_each_ends_state_beside_its_line(tmp_path: Path) -> None:
    run = replay("power_cut", tmp_path)
    started = time.perf_counter()
    page = html.render_run_report(load_view(run.run_dir))
    took = time.perf_counter() - started
    rects = lane_rects(page)
    client = [cls for x, cls in rects if x < X["client"]]
    server = [cls for x, cls in rects if x > X["server"]]
    assert client == ["ESTAB", "ESTAB"] and server == ["ESTAB"]  # the server's stays: half-open
    assert "✕ no socket" in page and "ESTAB · on" in page
    assert "client&#x27;s kernel (ss): ESTAB from +" in page and "client.sockets.jsonl:" in page
    assert "last socket sample at +" in page
    assert "its kernel's socket state" in page  # the legend
    assert took < 10  # a hang guard, not a speed target


def test_no_samples_no_lane(tmp_path: Path) -> None:
    run = replay("power_cut", tmp_path)
    for f in run.run_dir.glob("*.sockets.jsonl"):
        f.unlink()
    page = html.render_run_report(load_view(run.run_dir))
    assert lane_rects(page) == [] and "state-lane" not in page and "its kernel's socket state" not in page
