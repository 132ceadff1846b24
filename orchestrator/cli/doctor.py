from __future__ import annotations

from rich.console import Console

from orchestrator.errors import EngineError
from orchestrator.lab.engine import connect_engine
from orchestrator.lab.probe import probe_engine


def doctor() -> None:
    """Say what the engine supports: version, sysctls, NET_ADMIN, images present, leftovers."""
    report = probe_engine(connect_engine())
    console = Console()
    for f in report.findings:
        mark = "[green]ok[/]  " if f.ok else "[yellow]no[/]  "
        console.print(f"{mark}{f.what}: {f.detail}", highlight=False)
    if not any(f.what == "engine" for f in report.findings):
        raise EngineError("the engine did not answer")
