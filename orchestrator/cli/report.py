from __future__ import annotations

import json
import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.errors import UsageError
from orchestrator.report.terminal import markup_safe

# `report.sweep.JSON_FILE`, which imports the run machinery (most of a second): the test
# checks they are the same.
SWEEP_FILE = "sweep.json"


def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="run directories, such as runs/power_cut-20260101-120000 (or runs/power_cut-*/)"),
    ],
    open_page: Annotated[bool, typer.Option("--open", help="open report.html in the browser")] = False,
) -> None:
    """Make report.html (and junit.xml, the annotated captures) again from each run directory's
    files alone: verdict.json, the captures, the events and timeline.jsonl. A sweep's directory
    stands for each of its runs. No Docker."""
    console = Console(highlight=False)
    failed: list[str] = []
    for given in run_dirs:
        runs = _sweep_runs(given)
        if runs is not None:
            console.print(f"{markup_safe(str(given))}: a sweep, its {len(runs)} runs")
        for run_dir in runs if runs is not None else [given]:
            try:
                _report_one(run_dir, console, open_page and runs is None)
            except UsageError as exc:
                failed.append(str(exc))
        if runs is not None and open_page and (given / "index.html").exists():
            webbrowser.open((given / "index.html").resolve().as_uri())
    if failed:
        # A glob over several runs: each one that could be made is, and every failure is said.
        raise UsageError("; ".join(failed))


def _report_one(run_dir: Path, console: Console, open_page: bool) -> None:
    from orchestrator.report.artifacts import REPORT, regenerate  # noqa: PLC0415 - keeps other commands' start-up light

    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a directory")
    try:
        written, problems = regenerate(run_dir)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{run_dir}: cannot read the run: {exc}") from exc
    for name in written:
        console.print(f"[green]wrote[/] {markup_safe(str(run_dir / name))}")
    for problem in problems:
        console.print(f"[yellow]problem:[/] {markup_safe(problem)}")
    if REPORT not in written:
        raise UsageError(f"{run_dir}: {REPORT} could not be made")
    if open_page:
        webbrowser.open((run_dir / REPORT).resolve().as_uri())


def _sweep_runs(path: Path) -> list[Path] | None:
    """A sweep's run directories, as its sweep.json lists them (else every folder in it), in
    order; None where `path` is not a sweep's directory."""
    summary = path / SWEEP_FILE
    if not summary.is_file():
        return None
    try:
        rows = json.loads(summary.read_text())["rows"]
        listed = [path / str(row["run_dir"]) for row in rows]
    except (OSError, ValueError, KeyError, TypeError):
        listed = []
    return listed or sorted(p for p in path.iterdir() if p.is_dir())
