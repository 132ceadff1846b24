from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from orchestrator.errors import EngineError
from orchestrator.report.terminal import markup_safe


def clean(
    run_id: Annotated[str | None, typer.Option("--run", help="only this run id")] = None,
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            "--force",
            help="also runs whose tcpscen is still going, or whose owner is unknown (another machine, "
            "an older tcpscen)",
        ),
    ] = False,
) -> None:
    """Remove the containers, networks and nftables tables of runs whose tcpscen process is gone
    (killed, crashed, or from before a reboot). A run still going is left alone, unless --all."""
    from orchestrator.backend.docker.cleanup import remove_leftovers  # noqa: PLC0415 - keeps start-up light
    from orchestrator.backend.docker.engine import connect_engine  # noqa: PLC0415

    removed = remove_leftovers(connect_engine(), run_id, everything=everything)
    console = Console(highlight=False)
    console.print(
        f"removed {len(removed.containers)} containers, {len(removed.networks)} networks, "
        f"{len(removed.tables)} nftables tables"
    )
    for name in removed.containers + removed.networks + removed.tables:
        console.print(f"  {markup_safe(name)}")
    for run in removed.kept:
        why = "still running" if run.owner.value == "alive" else "owner unknown"
        console.print(
            f"left alone: {markup_safe(run.run_id)} ({why}, {markup_safe(run.who)}): "
            "`tcpscen clean --all` removes it too",
            soft_wrap=True,
        )
    if removed.failures:
        raise EngineError("could not remove: " + "; ".join(removed.failures))
