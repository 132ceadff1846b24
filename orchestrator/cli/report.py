from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.errors import UsageError
from orchestrator.report.terminal import markup_safe


def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory, such as runs/power_cut-20260101-120000")],
    open_page: Annotated[bool, typer.Option("--open", help="open report.html in the browser")] = False,
) -> None:
    """Make report.html (and junit.xml, the annotated captures) again from a run directory's files
    alone: verdict.json, the captures, the events and timeline.jsonl. No Docker."""
    from orchestrator.report.artifacts import REPORT, regenerate  # noqa: PLC0415 - keeps other commands' start-up light

    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: not a directory")
    try:
        written, problems = regenerate(run_dir)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{run_dir}: cannot read the run: {exc}") from exc
    console = Console(highlight=False)
    for name in written:
        console.print(f"[green]wrote[/] {markup_safe(str(run_dir / name))}")
    for problem in problems:
        console.print(f"[yellow]problem:[/] {markup_safe(problem)}")
    if REPORT not in written:
        raise UsageError(f"{run_dir}: {REPORT} could not be made")
    if open_page:
        webbrowser.open((run_dir / REPORT).resolve().as_uri())
