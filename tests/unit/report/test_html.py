"""report.html: self-contained, one arrow per ladder row, the faults, the verdict, the model; made
again from the run directory alone; a report for any capture; a failure that costs no verdict."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli.report import SWEEP_FILE, report
from orchestrator.errors import UsageError
from orchestrator.report import artifacts, html, sweep
from orchestrator.report.artifacts import regenerate, write_artifacts
from orchestrator.report.runview import INPUT_FILE, load_view
from orchestrator.verdict.judge import Verdict
from tests.helpers.reportrun import RETX_GAPS, make_run, write_verdict

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run as the runner leaves it: reports written after the verdict, then verdict.json."""
    d = tmp_path / "power_cut-20260101-000000"
    scenario, verdict, record = make_run(d)
    written = write_artifacts(d, scenario, verdict, record)
    write_verdict(d, verdict)
    assert sorted(written) == sorted(
        [INPUT_FILE, "junit.xml", "client.annotated.pcapng", "server.annotated.pcapng", "report.html"]
    ), verdict.notes
    return d


def assert_self_contained(page: str) -> None:
    assert not re.search(r"https?://", page), "a URL: the page must open from disk with nothing fetched"
    for tag in ("<script", "<link", "<img", "<iframe", "@import"):
        assert tag not in page, tag
    assert not re.search(r"\bsrc=", page)
    assert not re.search(r"url\((?!#)", page), "only in-page references (arrowhead markers)"


def test_the_report_stands_alone_and_draws_every_segment(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    assert_self_contained(page)
    assert page.count('<svg class="ladder"') == 1
    assert page.count('<svg class="time-sequence"') == 2  # both sides sent data
    (ladder,) = html.run_ladders_of(load_view(run_dir))
    assert page.count('<g class="pkt ') == len(ladder.rows) < ladder.packets  # the echoes collapsed
    assert page.count('class="arrow"') == len(ladder.rows)
    assert page.count(">[TCP Retransmission]</tspan>") == len(RETX_GAPS)
    assert page.count(' lost"') == 1 + len(RETX_GAPS)  # the send after the cut and each retransmission
    assert '<g class="collapsed" data-count="6">' in page
    assert "⚡ server network cut (disconnect) at +1.300 s" in page
    assert "app: error ETIMEDOUT (recv)" in page


def test_the_verdict_and_the_model_are_in_the_page(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert page.count('<tr class="pass">') == sum(c["passed"] for c in verdict["checks"]) == 4
    assert page.count('<tr class="fail">') == 1
    assert "<code>apps.server.sees</code></td><td>ECONNRESET</td><td>nothing</td>" in page
    assert "<title>tcpscen: power_cut FAIL</title>" in page
    model = page[page.index('<section id="model">') : page.index("</section>", page.index('id="model"'))]
    start = verdict["predictions"]["client"]["from"]
    assert "rto-abort" in model and f"{start['file']}#{start['frame']}" in model and "tcp_retries2=5" in model
    assert 'href="client.annotated.pcapng"' in page


def test_report_regenerates_from_the_directory_alone(run_dir: Path) -> None:
    first = _without_stamp((run_dir / "report.html").read_text())
    for name in ("report.html", "junit.xml", "client.annotated.pcapng"):
        (run_dir / name).unlink()
    written, problems = regenerate(run_dir)
    assert problems == []
    assert set(written) == {"junit.xml", "client.annotated.pcapng", "server.annotated.pcapng", "report.html"}
    assert _without_stamp((run_dir / "report.html").read_text()) == first


def test_an_older_run_directory_is_read_from_its_events(run_dir: Path) -> None:
    (run_dir / INPUT_FILE).unlink()  # written by runs before the reports existed
    view = load_view(run_dir)
    assert [(h.name, h.address, h.captures) for h in view.hosts] == [
        ("client", "10.77.0.20", ["client.pcap"]),
        ("server", "10.77.0.10", ["server.pcap"]),
    ]
    assert view.has_verdict and view.stream == 0 and len(view.faults) == 1
    written, problems = regenerate(run_dir)
    assert "report.html" in written and problems == []
    assert "⚡ server network cut" in (run_dir / "report.html").read_text()


def test_the_report_command(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / "report.html").unlink()
    report([run_dir])
    assert (run_dir / "report.html").exists()
    with pytest.raises(UsageError, match="not a directory"):
        report([tmp_path / "nope"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="not a run directory"):
        report([empty])


def test_the_report_command_takes_every_run_a_glob_names(run_dir: Path, tmp_path: Path) -> None:
    # README: `tcpscen report runs/power_cut-*/`; with two runs of it the shell gives two
    # directories, which the command refused ("unexpected extra argument").
    second = tmp_path / "power_cut-20260101-000100"
    shutil.copytree(run_dir, second)
    for d in (run_dir, second):
        (d / "report.html").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "report", str(run_dir), str(second)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert (run_dir / "report.html").exists() and (second / "report.html").exists()
    # Each run that can be made is; every failure is said, exit 2.
    (second / "report.html").unlink()
    with pytest.raises(UsageError, match=r"nope: not a directory; .*empty: .*not a run directory"):
        empty = tmp_path / "empty"
        empty.mkdir()
        report([tmp_path / "nope", second, empty])
    assert (second / "report.html").exists()


def test_a_report_for_any_capture(run_dir: Path, tmp_path: Path) -> None:
    out = html.write_capture_report([run_dir / "client.pcap", run_dir / "server.pcap"], tmp_path / "c.html")
    page = out.read_text()
    assert_self_contained(page)
    assert page.count('<svg class="ladder"') == 2 and "client.pcap: 1 connection" in page
    assert "[TCP Retransmission]" in page and " lost" not in page  # one capture says nothing of delivery


def test_a_report_that_fails_costs_no_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> Path:
        raise RuntimeError("disk full")

    monkeypatch.setattr(artifacts, "render_run_report", broken)
    d = tmp_path / "run"
    scenario, verdict, record = make_run(d)
    written = write_artifacts(d, scenario, verdict, record)
    assert "report.html" not in written and "junit.xml" in written
    assert isinstance(verdict, Verdict)
    assert any(n.startswith("report.html not written: RuntimeError: disk full") for n in verdict.notes)


def _without_stamp(page: str) -> str:
    return re.sub(r"made by tcpscen at [^.]*\.", "", page)


def test_the_report_command_takes_a_sweep_for_its_runs(run_dir: Path, tmp_path: Path) -> None:
    # `tcpscen report runs/<sweep>-<time>/`: each of the sweep's runs, as its sweep.json lists them.
    assert SWEEP_FILE == sweep.JSON_FILE
    swept = tmp_path / "retries-20260101-000000"
    swept.mkdir()
    for name in ("tcp_retries2=3", "tcp_retries2=5"):
        shutil.copytree(run_dir, swept / name)
        (swept / name / "report.html").unlink()
    rows = [{"run_dir": "tcp_retries2=3"}, {"run_dir": "tcp_retries2=5"}]
    (swept / "sweep.json").write_text(json.dumps({"rows": rows}))
    report([swept])
    assert all((swept / name / "report.html").exists() for name in ("tcp_retries2=3", "tcp_retries2=5"))
    # A run that cannot be made is said by its own name; the others are made.
    shutil.rmtree(swept / "tcp_retries2=5")
    (swept / "tcp_retries2=3" / "report.html").unlink()
    with pytest.raises(UsageError, match=r"tcp_retries2=5: not a directory"):
        report([swept])
    assert (swept / "tcp_retries2=3" / "report.html").exists()
    # Without sweep.json a folder of runs is not a sweep: said as before.
    (swept / "sweep.json").unlink()
    with pytest.raises(UsageError, match="not a run directory"):
        report([swept])
