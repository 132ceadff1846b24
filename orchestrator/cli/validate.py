from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.cli.common import expand, load_all
from orchestrator.report.terminal import markup_safe


def validate(files: Annotated[list[Path], typer.Argument(help="scenario files or folders")]) -> None:
    """Check scenario files without touching Docker; every problem, with file:line and key."""
    from orchestrator.scenario.model import socket_warnings  # noqa: PLC0415 - pydantic's models: a third of a second, only here

    scenarios = load_all(files)
    console = Console(highlight=False)
    for path, scenario in zip(expand(files), scenarios, strict=True):
        size = f"{len(scenario.hosts)} hosts, {len(scenario.timeline)} steps"
        if scenario.sweep:
            size += f", a sweep of {math.prod(len(v) for v in scenario.sweep.values())} runs"
        console.print(
            f"[green]ok[/] {markup_safe(str(path))}: {markup_safe(scenario.name)} ({size})", soft_wrap=True
        )
        for host, warning in socket_warnings(scenario):
            console.print(f"[yellow]warning[/] {markup_safe(host)}: {markup_safe(warning)}", soft_wrap=True)
