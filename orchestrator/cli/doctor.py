from __future__ import annotations

from rich.console import Console

from orchestrator.errors import EngineError
from orchestrator.report.terminal import markup_safe


def doctor() -> None:
    """Say what the engine supports: version, sysctls, NET_ADMIN, images present; the leftovers of
    dead runs (containers, networks, nftables tables), and the runs still going."""
    from orchestrator.backend.docker.engine import connect_engine  # noqa: PLC0415 - keeps other commands' start-up light
    from orchestrator.backend.docker.probe import probe_engine  # noqa: PLC0415

    report = probe_engine(connect_engine())
    console = Console()
    for f in report.findings:
        mark = "[green]ok[/]  " if f.ok else "[yellow]no[/]  "
        console.print(f"{mark}{f.what}: {markup_safe(f.detail)}", highlight=False, soft_wrap=True)
    if not any(f.what == "engine" for f in report.findings):
        raise EngineError("the engine did not answer")
