from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli.common import expand
from orchestrator.errors import ScenarioError
from orchestrator.report.terminal import markup_safe

if TYPE_CHECKING:
    from orchestrator.scenario.model import Scenario


def programs_of(scenario: Scenario) -> str:
    """What runs on each host: the built-in agent (its mode), a program (its command or image),
    or a Compose service."""
    parts = []
    for name, host in scenario.hosts.items():
        if host.role == "router":
            what = _router(host)
        elif host.service is not None:
            what = f"compose service {host.service}"
        elif host.program is not None:
            p = host.program
            words = p.command or p.entrypoint
            what = " ".join(words) if words else (p.image or "its image's command")
        else:
            agent = getattr(host, "agent", None)
            what = f"agent {agent.mode}" if agent is not None else "agent"
        parts.append(f"{name}: {what}")
    return "; ".join(parts)


def _router(host: object) -> str:
    """A router runs no app: say what it does to the flows instead."""
    nat = getattr(host, "nat", None)
    conntrack = getattr(host, "conntrack", None)
    does = ["router"]
    if nat is not None and nat.masquerade is not None:
        does.append(f"masquerade {nat.masquerade}")
    if conntrack is not None:
        does.append(f"forgotten flows {conntrack.forgotten}")
    return ", ".join(does)


def list_scenarios(
    folder: Annotated[Path, typer.Argument(help="folder of scenarios")] = Path("scenarios"),
) -> None:
    """List the scenarios in a folder, with their description and whether they load."""
    from orchestrator.scenario.loader import load_scenario  # noqa: PLC0415 - keeps other commands' start-up light

    table = Table(show_header=True)
    table.add_column("file")
    table.add_column("duration")
    table.add_column("description")
    table.add_column("programs")
    for path in expand([folder]):
        try:
            s = load_scenario(path)
            description = markup_safe(" ".join(s.description.split()))
            table.add_row(
                markup_safe(path.name), f"{s.duration:g}s", description, markup_safe(programs_of(s))
            )
        except ScenarioError as exc:
            table.add_row(markup_safe(path.name), "", f"[red]invalid: {len(exc.problems)} problem(s)[/]", "")
    Console().print(table)
