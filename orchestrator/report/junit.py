"""junit.xml: one test case per expectation, so CI systems show scenario results natively.

A run gets its own file (one testsuite); `tcpscen run --junit PATH` writes one for the whole set,
one testsuite per scenario run. A run that ended in an error, with no verdict, is one test case
with an <error>. A suite's `time` is its run's duration (seconds); the checks are judged after
the run, all at once, so a test case has none of its own, except a run's error (the whole run).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator.rundir import RunDir, give, make_dirs
from orchestrator.verdict.expectations import Check


def suite(
    name: str,
    checks: list[Check] | None,
    *,
    error: str | None = None,
    notes: list[str] | None = None,
    run_dir: Path | None = None,
    seconds: float | None = None,
) -> ET.Element:
    """One scenario run as a <testsuite>; checks None means the run gave no verdict; `seconds`,
    how long the run took."""
    el = ET.Element("testsuite", name=name)
    if seconds is not None:
        el.set("time", _time(seconds))
    if run_dir is not None:
        props = ET.SubElement(el, "properties")
        ET.SubElement(props, "property", name="run_dir", value=str(run_dir))
        ET.SubElement(props, "property", name="report", value=str(run_dir / "report.html"))
    failures = errors = 0
    for check in checks or []:
        case = ET.SubElement(el, "testcase", classname=f"tcpscen.{name}", name=check.name)
        if not check.passed:
            failures += 1
            failure = ET.SubElement(
                case,
                "failure",
                message=f"expected {check.expected}, observed {check.observed}",
                type="expectation",
            )
            failure.text = _details(check)
        elif check.evidence:
            ET.SubElement(case, "system-out").text = "\n".join(check.evidence)
    if checks is None or error is not None:
        errors += 1
        case = ET.SubElement(el, "testcase", classname=f"tcpscen.{name}", name="run")
        if seconds is not None:
            case.set("time", _time(seconds))
        problem = error or "the run gave no verdict"
        ET.SubElement(
            case, "error", message=problem.splitlines()[0] if problem else "", type="run"
        ).text = problem
    tests = len(checks or []) + (1 if checks is None or error is not None else 0)
    el.set("tests", str(tests))
    el.set("failures", str(failures))
    el.set("errors", str(errors))
    el.set("skipped", "0")
    if notes:
        ET.SubElement(el, "system-out").text = "\n".join(notes)
    return el


def document(suites: list[ET.Element]) -> ET.ElementTree[ET.Element]:
    root = ET.Element("testsuites", name="tcpscen")
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in suites)))
    times = [s.get("time") for s in suites]
    if suites and all(t is not None for t in times):
        root.set("time", _time(sum(float(t or 0) for t in times)))
    root.extend(suites)
    ET.indent(root)
    return ET.ElementTree(root)


def junit_bytes(suites: list[ET.Element]) -> bytes:
    data: bytes = ET.tostring(document(suites).getroot(), encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(path: Path, suites: list[ET.Element]) -> Path:
    """`--junit PATH`: the file replaced whole (a symlink at PATH is replaced, not followed), and
    given to the invoking user."""
    make_dirs(path.parent)
    with RunDir.open(path.parent, private=False) as folder:
        folder.replace(path.name, junit_bytes(suites))
        give(path.name, dir_fd=folder.fd)
    return path


def run_seconds(run_dir: Path, until: float | None = None) -> float | None:
    """How long a run took, from its journal (timeline.jsonl): from its start to its end, or to
    `until` if the end is not written (yet: the reports come just before it). None if unknown."""
    started = ended = None
    try:
        lines = (run_dir / "timeline.jsonl").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for raw in lines:
        try:
            note = json.loads(raw)
        except ValueError:
            continue
        if isinstance(note, dict) and note.get("kind") == "scenario":
            started = note.get("started")
        elif isinstance(note, dict) and note.get("kind") == "end":
            ended = note.get("t")
    end = ended if isinstance(ended, int | float) else until
    return end - started if isinstance(started, int | float) and end is not None else None


def _time(seconds: float) -> str:
    return f"{max(0.0, seconds):.3f}"


def _details(check: Check) -> str:
    lines = [f"expected: {check.expected}", f"observed: {check.observed}"]
    if check.evidence:
        lines.append("evidence:")
        lines += [f"  {e}" for e in check.evidence]
    return "\n".join(lines)
