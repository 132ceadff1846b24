from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.errors import UsageError
from orchestrator.report.terminal import markup_safe


def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="run directories, such as runs/power_cut-20260101-120000 (or runs/power_cut-*/)"),
    ],
    open_page: Annotated[bool, typer.Option("--open", help="open report.html in the browser")] = False,
) -> None:
    """Make report.html (and junit.xml, the annotated captures) again from each run directory's
    files alone: verdict.json, the captures, the events and timeline.jsonl. No Docker."""
    console = Console(highlight=False)
    failed: list[str] = []
    for run_dir in run_dirs:
        try:
            _report_one(run_dir, console, open_page)
        except UsageError as exc:
            failed.append(str(exc))
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
