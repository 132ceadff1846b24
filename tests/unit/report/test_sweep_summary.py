"""A sweep's summary (sweep.json, index.html) from runs judged by the real verdict code on crafted
captures (the power cut of `tests/helpers/reportrun.py`), one per tcp_retries2 value."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.errors import EngineError
from orchestrator.report.artifacts import write_artifacts
from orchestrator.report.sweep import INDEX, JSON_FILE, HostEnd, summarize, write_summary
from orchestrator.report.sweep_page import _end_cells
from orchestrator.run.sweep import SweepRuns, new_point_run, new_sweep
from orchestrator.scenario.sweep import load_sweep
from orchestrator.verdict.judge import judge
from tests.helpers.reportrun import SCENARIO, make_run


def sweep_runs(tmp_path: Path, sweep: str, report_for: tuple[str, ...] = ()) -> SweepRuns:
    path = tmp_path / "cut.yaml"
    path.write_text(SCENARIO + "sweep:\n" + sweep)
    runs = new_sweep(load_sweep(path), tmp_path / "runs")
    for point in runs.sweep.points:
        result = new_point_run(runs, point)
        _, _, record = make_run(result.run_dir)
        result.verdict = judge(point.scenario, record)
        if point.label in report_for:
            write_artifacts(result.run_dir, point.scenario, result.verdict, record)
    return runs


def test_each_run_its_values_verdict_and_ends(tmp_path: Path) -> None:
    runs = sweep_runs(tmp_path, "  hosts.client.sysctls.net.ipv4.tcp_retries2: [3, 5, 8]\n")
    s = summarize(runs)
    assert [r.label for r in s.rows] == ["tcp_retries2=3", "tcp_retries2=5", "tcp_retries2=8"]
    assert [r.values for r in s.rows] == [
        {"hosts.client.sysctls.net.ipv4.tcp_retries2": n} for n in (3, 5, 8)
    ]
    assert [r.run_dir for r in s.rows] == ["tcp_retries2=3", "tcp_retries2=5", "tcp_retries2=8"]
    assert s.x_key == "hosts.client.sysctls.net.ipv4.tcp_retries2"
    for r in s.rows:
        end = r.ends["client"]
        assert end.kind == "rto-abort" and end.rto_s == pytest.approx(0.4)
        assert end.app_sees == "ETIMEDOUT"
    # The model's ends differ with the setting: 6.0 s (3's 3 s budget ends between expiries),
    # 25.2 s (5: exactly 0.4 s falls short of 12.6 s), 204.4 s.
    assert [r.ends["client"].predicted_s for r in s.rows] == pytest.approx([6.0, 25.2, 204.4])


def test_the_curve_is_the_model_over_the_whole_range_and_meets_each_prediction(tmp_path: Path) -> None:
    runs = sweep_runs(tmp_path, "  hosts.client.sysctls.net.ipv4.tcp_retries2: [3, 5, 8]\n")
    s = summarize(runs)
    (curve,) = [c for c in s.curves if c.host == "client"]
    assert [x for x, _ in curve.points] == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # not only where runs were
    model = dict(curve.points)
    for r in s.rows:
        assert model[r.settings[s.x_key or ""] or 0] == pytest.approx(r.ends["client"].predicted_s)
    assert dict(curve.budget)[5.0] == pytest.approx(12.6)
    assert curve.rto_s == pytest.approx(0.4)


def test_index_and_json_are_written_and_agree(tmp_path: Path) -> None:
    runs = sweep_runs(
        tmp_path, "  hosts.client.sysctls.net.ipv4.tcp_retries2: [3, 5]\n", report_for=("tcp_retries2=3",)
    )
    index, data = write_summary(runs)
    assert (index.name, data.name) == (INDEX, JSON_FILE)
    saved = json.loads(data.read_text())
    assert [r["label"] for r in saved["rows"]] == ["tcp_retries2=3", "tcp_retries2=5"]
    assert saved["rows"][0]["report"] == "tcp_retries2=3/report.html"
    assert saved["rows"][1]["report"] is None  # no report.html was written for it
    assert saved["curves"][0]["points"][0] == [3.0, pytest.approx(6.0)]
    page = index.read_text()
    tags = Tags()
    tags.feed(page)
    assert "script" not in tags.names and "http://" not in page.replace("http://www.w3.org", "")
    assert tags.classes.count("curve") == 1
    assert tags.classes.count("point predicted") == 2
    assert tags.classes.count("point app") == 2
    assert 'href="tcp_retries2=3/report.html"' in page
    (model,) = [a for a in tags.polylines if a.get("class") == "model"]
    assert len((model.get("points") or "").split()) == 3  # 3, 4, 5


def test_a_failed_run_is_a_row_with_its_error(tmp_path: Path) -> None:
    runs = sweep_runs(tmp_path, "  hosts.client.sysctls.net.ipv4.tcp_retries2: [3, 5]\n")
    runs.runs[1][1].verdict = None
    runs.runs[1][1].error = EngineError("the engine went away")
    s = summarize(runs)
    assert s.rows[1].verdict == "ERROR" and s.rows[0].verdict != "ERROR"
    assert s.rows[1].error == "the engine went away" and not s.rows[1].ends
    assert "the engine went away" in (write_summary(runs)[0]).read_text()


def test_no_plot_without_a_key_that_takes_numbers(tmp_path: Path) -> None:
    runs = sweep_runs(tmp_path, "  hosts.client.agent.mode: [send, pool]\n")
    s = summarize(runs)
    assert s.x_key is None and not s.curves
    assert "No plot" in write_summary(runs)[0].read_text()


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.classes: list[str] = []
        self.polylines: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.append(tag)
        found = dict(attrs)
        if found.get("class"):
            self.classes.append(found["class"] or "")
        if tag == "polyline":
            self.polylines.append(found)


def test_a_duration_is_sampled_as_the_file_would_write_it(tmp_path: Path) -> None:
    # keepidle does not change an RTO abort: the model's curve is flat, defined at whole seconds.
    runs = sweep_runs(tmp_path, "  hosts.client.agent.socket.keepidle: [1s, 4s]\n")
    s = summarize(runs)
    (curve,) = [c for c in s.curves if c.host == "client"]
    assert [x for x, _ in curve.points] == [1.0, 2.0, 3.0, 4.0]
    assert [y for _, y in curve.points] == pytest.approx([s.rows[0].ends["client"].predicted_s] * 4)


def test_a_user_timeout_the_capture_belies_has_no_bounds(tmp_path: Path) -> None:
    """The crafted cut retransmits up to 2.8 s after the first retransmission whatever the user
    timeout, and ends there: a 1.5 s or 2 s user timeout is contradicted, and nothing after the
    capture's last retransmission can be bounded."""
    runs = sweep_runs(tmp_path, "  hosts.client.agent.socket.user_timeout: [1.5s, 2s]\n")
    for r in summarize(runs).rows:
        end = r.ends["client"]
        assert end.observed_s is None and end.observed_window is None
        assert end.within_tolerance is None


def test_the_page_gives_an_ends_bounds() -> None:
    end = HostEnd("rto-abort", 3.0, None, 3.004, "ETIMEDOUT", True, None, "the first retransmission", 1.0)
    end.observed_window = (2.916, 5.22)
    assert "<td>between 2.916 and 5.220 s</td>" in _end_cells(end)
