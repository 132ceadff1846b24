"""junit.xml: one test case per expectation, failures marked; one testsuite per run for a set."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator.cli.run import _write_junit
from orchestrator.errors import EngineError
from orchestrator.report.artifacts import write_artifacts
from orchestrator.run.runner import RunResult
from orchestrator.verdict.expectations import Check
from orchestrator.verdict.judge import Verdict
from tests.helpers.reportrun import make_run


def test_one_test_case_per_expectation(tmp_path: Path) -> None:
    scenario, verdict, record = make_run(tmp_path)
    write_artifacts(tmp_path, scenario, verdict, record)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "power_cut"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.name for c in verdict.checks]
    assert {c.get("classname") for c in cases} == {"tcpscen.power_cut"}
    failed = [c for c in cases if c.find("failure") is not None]
    assert (
        [c.get("name") for c in failed]
        == [c.name for c in verdict.checks if not c.passed]
        == ["apps.server.sees"]
    )
    failure = failed[0].find("failure")
    assert failure is not None and failure.get("message") == "expected ECONNRESET, observed nothing"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (str(len(cases)), "1", "0")
    assert root.get("failures") == "1"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["report"] == str(tmp_path / "report.html")


def test_a_set_of_runs_has_one_suite_each(tmp_path: Path) -> None:
    passed = RunResult("a-1", tmp_path / "a-1")
    passed.verdict = _verdict([Check("close", True, "fin", "fin", ["client.pcap#9"])])
    repeat = RunResult("a-2", tmp_path / "a-2")
    repeat.verdict = _verdict([Check("close", False, "fin", "rst", [])])
    broken = RunResult("b-1", tmp_path / "b-1", error=EngineError("no Docker engine answers"))
    path = _write_junit(tmp_path / "runs" / "junit.xml", [("a", passed), ("a", repeat), ("b", broken)])
    root = ET.parse(path).getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["a #1", "a #2", "b"]
    assert [s.get("failures") for s in suites] == ["0", "1", "0"]
    error = suites[2].find("testcase/error")
    assert error is not None and error.get("message") == "no Docker engine answers"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")


def _verdict(checks: list[Check]) -> Verdict:
    return Verdict("a", checks, None, {}, {}, [], None)
