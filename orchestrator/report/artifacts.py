"""Files made from a finished run for people and tools: written after the verdict, in the run directory.

* report.html: the page to look at (verdict, ladder diagrams, time-sequence graphs, apps);
* junit.xml: one test case per expectation, for CI;
* HOST[.bootN].annotated.pcapng: each capture with the faults and the apps' ends as packet
  comments, for Wireshark;
* report-input.json: what the directory cannot say by itself, so `tcpscen report` can redo it all.

None of this may cost the verdict: a failure becomes a note in it, and the next file is tried.
Every file is written through the run directory's descriptor (`rundir.RunDir`): new files after a
run, replaced whole (never written through) by `tcpscen report`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path

from orchestrator.pcap.annotate import Note, annotate_capture
from orchestrator.report.html import render_run_report
from orchestrator.report.junit import junit_bytes, run_seconds, suite
from orchestrator.report.runview import INPUT_FILE, RunView, input_json, load_view, view_of_run
from orchestrator.report.sections import annotated_name
from orchestrator.rundir import RunDir, give
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
    with RunDir.open(run_dir) as files:
        written, problems = write_all(view, files, save_input=True)
    verdict.notes.extend(problems)
    return written


def regenerate(run_dir: Path) -> tuple[list[str], list[str]]:
    """`tcpscen report RUN_DIR`: everything again from the directory's files alone.
    Returns (names written, problems). Raises OSError/ValueError for a directory that is not a run's."""
    view = load_view(run_dir)
    with RunDir.open(run_dir, private=False) as files:
        written, problems = write_all(view, files, save_input=False)
        for name in written:  # under sudo, the sudo user's like the rest of the run
            give(name, dir_fd=files.fd)
    return written, problems


def write_all(view: RunView, files: RunDir, save_input: bool) -> tuple[list[str], list[str]]:
    """save_input: after a run, into a fresh directory (every name new); else `tcpscen report`,
    replacing the files it made before."""
    written: list[str] = []
    problems: list[str] = []
    fresh = save_input

    def put(name: str, data: str | bytes) -> list[str]:
        if fresh:
            files.write(name, data)
        else:
            files.replace(name, data)
        return [name]

    def attempt(what: str, make: Callable[[], list[str]]) -> None:
        try:
            written.extend(make())
        except Exception as exc:  # the next file is still worth writing
            problems.append(f"{what} not written: {_describe(exc)}")

    if save_input:
        attempt(INPUT_FILE, lambda: put(INPUT_FILE, input_json(view)))
    attempt(JUNIT, lambda: put(JUNIT, _junit(view, live=fresh)))
    attempt("annotated captures", lambda: _annotated(view, files, replace=not fresh))
    attempt(REPORT, lambda: put(REPORT, render_run_report(view)))
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


def _junit(view: RunView, live: bool) -> bytes:
    checks = view.checks if view.has_verdict else None
    # Right after a run its journal has no end yet: the run lasts until now.
    seconds = run_seconds(view.run_dir, until=time.time() if live else None)
    return junit_bytes(
        [suite(view.scenario, checks, notes=view.notes, run_dir=view.run_dir, seconds=seconds)]
    )


def _annotated(view: RunView, files: RunDir, replace: bool) -> list[str]:
    notes = notes_of(view)
    out = []
    for host in view.hosts:
        for capture in host.captures:
            src = files.anchor() / capture
            if src.exists():
                name = annotated_name(capture)
                with files.staged(name, replace=replace) as dst:  # annotate_capture takes a path
                    annotate_capture(src, dst, notes)
                out.append(name)
    return out


def _describe(exc: Exception) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" ({Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{place}"
