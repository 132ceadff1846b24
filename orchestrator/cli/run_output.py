"""What `tcpscen run` prints about finished runs: a line per run, the summary of a set, and with
--json one JSON object per run (one a line, on stdout alone, so it can be piped).

Off a terminal nothing is cut or wrapped: a run directory is a path to copy, and CI logs are
read by tools."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from orchestrator.report.terminal import markup_safe

if TYPE_CHECKING:
    from orchestrator.run.runner import RunResult
    from orchestrator.run.sweep import SweepRuns
    from orchestrator.scenario.sweep import Point


def verdict_word(r: RunResult) -> str:
    if r.error is not None or r.verdict is None:
        return "ERROR"
    return "PASS" if r.verdict.passed else "FAIL"


def one_line(name: str, r: RunResult) -> str:
    shown = markup_safe(f"{name:<22}")
    if r.error is not None:
        return f"[red]ERROR[/] {shown} {markup_safe(str(r.error))}  {markup_safe(str(r.run_dir))}"
    assert r.verdict is not None
    mark = "[green]PASS[/] " if r.verdict.passed else "[red]FAIL[/] "
    failed = [c.name for c in r.verdict.checks if not c.passed]
    detail = f"{r.verdict.passed_count}/{len(r.verdict.checks)}" + (
        f"  failed: {', '.join(failed)}" if failed else ""
    )
    return f"{mark}{shown} {markup_safe(detail)}  {markup_safe(str(r.run_dir))}"


def print_line(console: Console, name: str, r: RunResult) -> None:
    # soft_wrap: never a line break inserted into a path, whatever the width.
    console.print(one_line(name, r), soft_wrap=True)


def print_summary(console: Console, results: list[tuple[str, RunResult]]) -> None:
    """A table on a terminal (the run directory folded, never cut); off one, a line per run."""
    if console.is_terminal:
        table = Table(title="summary")
        table.add_column("scenario")
        table.add_column("verdict")
        table.add_column("expectations")
        table.add_column("run directory", overflow="fold")
        for name, r in results:
            shown, run_dir = markup_safe(name), markup_safe(str(r.run_dir))
            if r.error is not None:
                table.add_row(shown, "[red]ERROR[/]", markup_safe(str(r.error)[:60]), run_dir)
            elif r.verdict is not None:
                mark = "[green]PASS[/]" if r.verdict.passed else "[red]FAIL[/]"
                table.add_row(shown, mark, f"{r.verdict.passed_count}/{len(r.verdict.checks)}", run_dir)
        console.print(table)
    else:
        console.print("summary:", soft_wrap=True)
        for name, r in results:
            print_line(console, name, r)
    passed = sum(1 for _, r in results if verdict_word(r) == "PASS")
    console.print(f"{passed}/{len(results)} scenarios passed")


def run_json(
    name: str, r: RunResult, sweep: SweepRuns | None = None, point: Point | None = None
) -> dict[str, Any]:
    """One run, for tools: what it was, its verdict, where its files are, and each check."""
    v = r.verdict
    report = r.run_dir / "report.html"
    out: dict[str, Any] = {
        "scenario": name,
        "verdict": verdict_word(r),
        "run_dir": str(r.run_dir),
        "report": str(report) if report.exists() else None,
        "duration_s": round(r.seconds, 3) if r.seconds is not None else None,
        "error": str(r.error) if r.error is not None else None,
        "exit_code": r.error.exit_code if r.error is not None else (0 if v is not None and v.passed else 1),
        "passed": v.passed_count if v is not None else 0,
        "checks": [asdict(c) for c in v.checks] if v is not None else [],
        "predictions": {
            host: {
                "kind": p.kind,
                "side": p.side,
                "predicted_s": p.predicted_s,
                "observed_s": p.observed_s,
                "within_tolerance": p.within_tolerance,
                "upper_bound": p.upper_bound,
            }
            for host, p in (v.predictions.items() if v is not None else [])
        },
        "sweep": None,
    }
    if sweep is not None and point is not None:
        out["sweep"] = {
            "name": sweep.sweep.name,
            "directory": str(sweep.directory),
            "values": dict(zip([k.key for k in sweep.sweep.keys], point.values, strict=True)),
        }
    return out


class JsonLines:
    """One JSON object a line on stdout, whole lines only, whichever thread's run ends first."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, obj: dict[str, Any]) -> None:
        text = json.dumps(obj, separators=(",", ":"), default=str)
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()
