from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli.common import expand
from orchestrator.errors import ScenarioError
from orchestrator.report.terminal import markup_safe


def list_scenarios(
    folder: Annotated[Path, typer.Argument(help="folder of scenarios")] = Path("scenarios"),
) -> None:
    """List the scenarios in a folder, with their description and whether they load."""
    from orchestrator.scenario.loader import load_scenario  # noqa: PLC0415 - keeps other commands' start-up light

    table = Table(show_header=True)
    table.add_column("file")
    table.add_column("duration")
    table.add_column("description")
    for path in expand([folder]):
        try:
            s = load_scenario(path)
            description = markup_safe(" ".join(s.description.split()))
            table.add_row(markup_safe(path.name), f"{s.duration:g}s", description)
        except ScenarioError as exc:
            table.add_row(markup_safe(path.name), "", f"[red]invalid: {len(exc.problems)} problem(s)[/]")
    Console().print(table)
