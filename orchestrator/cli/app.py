"""Entry point: `tcpscen`. Each command lives in its own module."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import typer
from rich.console import Console

from orchestrator.cli import build, clean, doctor, listing, run, validate
from orchestrator.errors import TcpscenError

app = typer.Typer(
    help="Reproduce TCP disconnection behaviour between real Linux kernels in Docker, and judge it from the packets.",
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


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same road as Ctrl-C, through every `finally` that cleans up.
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    err = Console(stderr=True)
    try:
        app(standalone_mode=False)
    except TcpscenError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; the run's containers and network were removed")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click's usage errors arrive here in non-standalone mode
        from click.exceptions import ClickException

        if isinstance(exc, ClickException):
            exc.show()
            sys.exit(2)
        raise
