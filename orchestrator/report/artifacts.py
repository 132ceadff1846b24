"""Files made from a finished run for people and tools: written after the verdict, in the run directory.

* report.html: the page to look at (verdict, ladder diagrams, time-sequence graphs, apps);
* junit.xml: one test case per expectation, for CI;
* HOST[.bootN].annotated.pcapng: each capture with the faults and the apps' ends as packet
  comments, for Wireshark;
* report-input.json: what the directory cannot say by itself, so `tcpscen report` can redo it all.

None of this may cost the verdict: a failure becomes a note in it, and the next file is tried.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path

from orchestrator.pcap.annotate import Note, annotate_capture
from orchestrator.report.html import write_run_report
from orchestrator.report.junit import run_seconds, suite, write_junit
from orchestrator.report.runview import RunView, load_view, view_of_run, write_input
from orchestrator.report.sections import annotated_name
from orchestrator.scenario.model import Scenario
from orchestrator.verdict.judge import RunRecord, Verdict

REPORT = "report.html"
JUNIT = "junit.xml"


def write_artifacts(run_dir: Path, scenario: Scenario, verdict: Verdict, record: RunRecord) -> list[str]:
    """Write the run's reports; return the names written. Problems go to the verdict's notes."""
    try:
        view = view_of_run(scenario, verdict, record)
    except Exception as exc:  # a report must never lose the verdict
        verdict.notes.append(f"reports not written: {_describe(exc)}")
        return []
    written, problems = write_all(view, save_input=True)
    verdict.notes.extend(problems)
    return written


def regenerate(run_dir: Path) -> tuple[list[str], list[str]]:
    """`tcpscen report RUN_DIR`: everything again from the directory's files alone.
    Returns (names written, problems). Raises OSError/ValueError for a directory that is not a run's."""
    return write_all(load_view(run_dir), save_input=False)


def write_all(view: RunView, save_input: bool) -> tuple[list[str], list[str]]:
    written: list[str] = []
    problems: list[str] = []

    def attempt(what: str, make: Callable[[], list[str]]) -> None:
        try:
            written.extend(make())
        except Exception as exc:  # the next file is still worth writing
            problems.append(f"{what} not written: {_describe(exc)}")

    if save_input:
        attempt("report-input.json", lambda: _input(view))
    attempt(JUNIT, lambda: _junit(view, live=save_input))
    attempt("annotated captures", lambda: _annotated(view))
    attempt(REPORT, lambda: [write_run_report(view, view.run_dir / REPORT).name])
    return written, problems


def notes_of(view: RunView) -> list[Note]:
    """The comments for Wireshark: traffic start, each fault, and how each app's connection ended."""
    t0 = view.t0
    notes = [Note(t0, "tcpscen: traffic starts here (t0)")] if t0 is not None else []
    for f in view.faults:
        at = f" at {f.in_effect - t0:+.3f} s (asked at {f.t - t0:+.3f} s)" if t0 is not None else ""
        if f.error is None:
            text = f"tcpscen fault #{f.index}: {f.detail or f.fault + ' on ' + f.host}{at}"
        else:
            text = f"tcpscen fault #{f.index}: {f.fault} on {f.host} FAILED{at}: {f.error}"
        notes.append(Note(f.in_effect, text))
    for e in view.events:
        if e.event in ("eof", "error"):
            at = f" at {e.t - t0:+.3f} s" if t0 is not None else ""
            what = "EOF (read returned 0)" if e.event == "eof" else f"{e.errno or 'an error'} ({e.op or '?'})"
            notes.append(Note(e.t, f"tcpscen: {e.host} app saw {what}{at}"))
    return notes


def _input(view: RunView) -> list[str]:
    write_input(view)
    return ["report-input.json"]


def _junit(view: RunView, live: bool) -> list[str]:
    checks = view.checks if view.has_verdict else None
    # Right after a run its journal has no end yet: the run lasts until now.
    seconds = run_seconds(view.run_dir, until=time.time() if live else None)
    one = suite(view.scenario, checks, notes=view.notes, run_dir=view.run_dir, seconds=seconds)
    write_junit(view.run_dir / JUNIT, [one])
    return [JUNIT]


def _annotated(view: RunView) -> list[str]:
    notes = notes_of(view)
    out = []
    for host in view.hosts:
        for capture in host.captures:
            src = view.run_dir / capture
            if src.exists():
                out.append(annotate_capture(src, view.run_dir / annotated_name(capture), notes).path.name)
    return out


def _describe(exc: Exception) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" ({Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{place}"
