from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from orchestrator.errors import EngineError
from orchestrator.lab.cleanup import remove_run
from orchestrator.lab.engine import connect_engine


def clean(run_id: Annotated[str | None, typer.Option("--run", help="only this run id")] = None) -> None:
    """Remove every container and network a run left behind (found by the tcpscen.run label)."""
    removed = remove_run(connect_engine(), run_id)
    console = Console()
    console.print(f"removed {len(removed.containers)} containers and {len(removed.networks)} networks")
    for name in removed.containers + removed.networks:
        console.print(f"  {name}", highlight=False)
    if removed.failures:
        raise EngineError("could not remove: " + "; ".join(removed.failures))
