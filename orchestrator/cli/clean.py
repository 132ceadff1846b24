from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from orchestrator.errors import EngineError
from orchestrator.report.terminal import markup_safe


def clean(run_id: Annotated[str | None, typer.Option("--run", help="only this run id")] = None) -> None:
    """Remove every container, network and nftables table a run left behind (found by its label)."""
    from orchestrator.backend.docker.cleanup import remove_leftovers  # noqa: PLC0415 - keeps start-up light
    from orchestrator.backend.docker.engine import connect_engine  # noqa: PLC0415

    removed = remove_leftovers(connect_engine(), run_id)
    console = Console(highlight=False)
    console.print(
        f"removed {len(removed.containers)} containers, {len(removed.networks)} networks, "
        f"{len(removed.tables)} nftables tables"
    )
    for name in removed.containers + removed.networks + removed.tables:
        console.print(f"  {markup_safe(name)}")
    if removed.failures:
        raise EngineError("could not remove: " + "; ".join(removed.failures))
