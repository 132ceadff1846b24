"""Entry point: `tcpscen`. Each command lives in its own module."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from orchestrator.cli import analyze, build, clean, doctor, listing, report, run, validate
from orchestrator.errors import ScenarioError, TcpscenError
from orchestrator.report.terminal import markup_safe

app = typer.Typer(
    help="Reproduce TCP disconnection behaviour between real kernels, and judge it from the packets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run.run)
app.command("validate")(validate.validate)
app.command("list")(listing.list_scenarios)
app.command("clean")(clean.clean)
app.command("doctor")(doctor.doctor)
app.command("build")(build.build)
app.command("report")(report.report)
app.command("analyze")(analyze.analyze)


def main() -> None:
    err = Console(stderr=True, highlight=False)
    try:
        # Standalone mode: typer turns usage errors into exit 2 itself; ours pass through to here.
        app()
    except ScenarioError as exc:
        # One problem a line, never wrapped: file:line stays clickable in editors and terminals.
        err.print(f"[bold red]{len(exc.problems)} problem(s):[/]", soft_wrap=True)
        for problem in sorted(exc.problems, key=lambda p: (p.file, p.line or 0)):
            err.print(markup_safe(str(problem)), soft_wrap=True)
        sys.exit(exc.exit_code)
    except TcpscenError as exc:
        err.print(f"[bold red]error:[/] {markup_safe(str(exc), multiline=True)}", soft_wrap=True)
        sys.exit(exc.exit_code)
