"""What `tcpscen run` prints for tools and logs: --json (one object a line, nothing else on
stdout), paths never cut off a terminal, and junit.xml's times. The CLI runs on the fake backend."""

from __future__ import annotations

import io
import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from orchestrator.cli.app import app
from orchestrator.cli.run_output import JsonLines, print_line, print_summary, run_json
from orchestrator.errors import EngineError
from orchestrator.report.junit import document, run_seconds, suite
from orchestrator.run.runner import RunResult
from orchestrator.verdict.expectations import Check
from orchestrator.verdict.judge import Verdict
from tests.helpers.fake_backend import FakeBackend
from tests.unit.cli.test_cli import cli

LONG = Path("/tmp/runs/a-rather-long-folder-name-for-runs/sweep_retries2-20260101-120000/tcp_retries2=8")

FAKE = """\
name: fake
duration: 300ms
settle: 100ms
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: echo, port: 7000}}
  client: {role: client, address: 10.77.0.20, agent: {mode: send, connect: "server:7000"}}
"""


def result(run_dir: Path, checks: list[Check] | None = None, error: Exception | None = None) -> RunResult:
    r = RunResult("r-1", run_dir, started=100.0, ended=112.5)
    if checks is not None:
        r.verdict = Verdict("a", checks, None, {}, {}, [], None)
    if isinstance(error, EngineError):
        r.error = error
    return r


def test_run_json_has_the_verdict_the_directory_and_each_check(tmp_path: Path) -> None:
    checks = [
        Check("close", True, "none", "none", ["client.pcap#9"]),
        Check("backoff", False, "doubling", "flat"),
    ]
    out = run_json("power_cut", result(tmp_path, checks))
    assert out["scenario"] == "power_cut" and out["verdict"] == "FAIL" and out["exit_code"] == 1
    assert out["run_dir"] == str(tmp_path) and out["report"] is None
    assert out["duration_s"] == 12.5 and out["passed"] == 1
    assert out["checks"][0] == {
        "name": "close",
        "passed": True,
        "expected": "none",
        "observed": "none",
        "evidence": ["client.pcap#9"],
    }
    broken = run_json("b", result(tmp_path, error=EngineError("no Docker engine answers")))
    assert (broken["verdict"], broken["error"], broken["exit_code"]) == (
        "ERROR",
        "no Docker engine answers",
        3,
    )
    json.dumps(out)  # plain JSON all the way down


def test_json_lines_stay_whole_across_threads() -> None:
    stream = io.StringIO()
    out = JsonLines(stream)
    big = {"evidence": ["x" * 5000]}

    def emit(n: int) -> None:
        for i in range(40):
            out.emit({"thread": n, "i": i, **big})

    threads = [threading.Thread(target=emit, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 240 and all(json.loads(line)["evidence"] == big["evidence"] for line in lines)


def test_off_a_terminal_no_path_is_cut_or_wrapped() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=60, force_terminal=False, highlight=False)
    failed = result(LONG, [Check("apps.client.sees", False, "ETIMEDOUT", "EHOSTUNREACH")])
    print_line(console, "sweep_retries2[tcp_retries2=8]", failed)
    print_summary(
        console, [("sweep_retries2[tcp_retries2=8]", failed), ("b", result(LONG, error=EngineError("x")))]
    )
    text = buf.getvalue()
    assert text.count(str(LONG)) == 3, text  # the line, and each run in the summary
    assert "…" not in text
    assert all(str(LONG) in line for line in text.splitlines() if "/tmp" in line)


def test_on_a_terminal_the_table_folds_the_path_instead_of_cutting_it() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=70, force_terminal=True, color_system=None, highlight=False)
    print_summary(console, [("a", result(LONG, [Check("close", True, "none", "none")]))])
    cells = "".join(
        line.split("│")[-2].strip() for line in buf.getvalue().splitlines() if line.count("│") >= 5
    )
    assert str(LONG) in cells and "…" not in buf.getvalue()


def test_junit_times_per_suite_and_in_total(tmp_path: Path) -> None:
    ok = suite("a", [Check("close", True, "none", "none")], seconds=12.3456)
    broken = suite("b", None, error="the engine went away", seconds=3.0)
    root = document([ok, broken]).getroot()
    assert (ok.get("time"), broken.get("time"), root.get("time")) == ("12.346", "3.000", "15.346")
    (case,) = broken.findall("testcase")
    assert case.get("time") == "3.000"  # the error case is the whole run
    assert document([suite("c", [])]).getroot().get("time") is None  # unknown: no time, not 0


def test_a_run_directory_knows_its_duration(tmp_path: Path) -> None:
    (tmp_path / "timeline.jsonl").write_text(
        '{"kind": "scenario", "name": "a", "started": 1000.0}\n{"kind": "t0", "t": 1002.0}\n'
    )
    assert run_seconds(tmp_path) is None  # no end yet, and no moment given: unknown
    assert run_seconds(tmp_path, until=1042.0) == 42.0  # right after the run, before its end is written
    with (tmp_path / "timeline.jsonl").open("a") as f:
        f.write('{"kind": "end", "t": 1030.5, "error": null}\n')
    assert run_seconds(tmp_path, until=2000.0) == 30.5
    assert run_seconds(tmp_path / "absent", until=1.0) is None


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> list[FakeBackend]:
    made: list[FakeBackend] = []
    monkeypatch.setattr("orchestrator.backend.docker.lab.Lab", FakeBackend.factory(made=made))
    return made


@pytest.mark.usefixtures("fake_engine")
def test_json_mode_prints_one_object_per_run_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "fake.yaml"
    path.write_text(FAKE)
    runs = tmp_path / "runs"
    done = CliRunner().invoke(
        app,
        [
            "run",
            "--json",
            "--repeat",
            "2",
            str(path),
            "--runs-dir",
            str(runs),
            "--junit",
            str(runs / "j.xml"),
        ],
    )
    assert done.exit_code == 0, done.stdout + done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(objects) == 2 and {o["scenario"] for o in objects} == {"fake"}
    assert all(o["verdict"] == "PASS" and Path(o["run_dir"]).is_dir() and o["sweep"] is None for o in objects)
    assert "2/2 scenarios passed" in done.stderr and "junit:" in done.stderr
    suites = ET.parse(runs / "j.xml").getroot().findall("testsuite")
    assert all(float(s.get("time") or "0") > 0 for s in suites)
    assert ET.parse(Path(objects[0]["run_dir"]) / "junit.xml").getroot().find("testsuite").get("time")  # type: ignore[union-attr]


def test_a_sweep_runs_each_combination_into_its_directory(
    tmp_path: Path, fake_engine: list[FakeBackend]
) -> None:
    path = tmp_path / "fake.yaml"
    path.write_text(FAKE + "sweep:\n  hosts.client.agent.size: [64, 128]\n")
    runs = tmp_path / "runs"
    done = CliRunner().invoke(app, ["run", "--json", "-j", "2", str(path), "--runs-dir", str(runs)])
    assert done.exit_code == 0, done.stdout + done.stderr
    objects = sorted((json.loads(line) for line in done.stdout.splitlines()), key=lambda o: o["scenario"])
    assert [o["scenario"] for o in objects] == ["fake[size=128]", "fake[size=64]"]
    (sweep_dir,) = runs.iterdir()
    assert [o["sweep"]["values"] for o in objects] == [
        {"hosts.client.agent.size": 128},
        {"hosts.client.agent.size": 64},
    ]
    assert all(o["sweep"]["directory"] == str(sweep_dir) for o in objects)
    assert {p.name for p in sweep_dir.iterdir()} == {"size=64", "size=128", "index.html", "sweep.json"}
    assert f"sweep: {sweep_dir / 'index.html'}" in done.stderr
    # Each run's agent got its value.
    sizes = {b.run_dir.name: json.loads(b.hosts["client"].config)["size"] for b in fake_engine}
    assert sizes == {"size=64": 64, "size=128": 128}


def test_a_bad_sweep_is_exit_2_before_any_run(tmp_path: Path) -> None:
    path = tmp_path / "fake.yaml"
    path.write_text(FAKE + "sweep:\n  hosts.client.agent.sise: [64]\n  hosts.client.agent.every: [1s, 2]\n")
    runs = tmp_path / "runs"
    # DOCKER_HOST points nowhere: reaching the engine would fail with exit 3, not 2.
    done = cli("run", path, "--runs-dir", runs, env={"DOCKER_HOST": "tcp://127.0.0.1:9"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:8: sweep.hosts.client.agent.sise: hosts.client.agent.sise is not a key" in done.stderr
    assert f"{path}:9: sweep.hosts.client.agent.every[1]: 2: 2 has no unit" in done.stderr
    assert "Traceback" not in done.stderr and not runs.exists()
