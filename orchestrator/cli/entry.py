"""The console script's entry: signals are taken over before the heavy imports, so Ctrl-C or
SIGTERM at any moment ends in the same clean way (exit 130, no traceback)."""

from __future__ import annotations

import signal
import sys

from orchestrator.interrupts import on_signal


def main() -> None:
    # SIGTERM takes the same road as Ctrl-C, through every `finally` that cleans up.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        from orchestrator.cli.app import main as run_app  # noqa: PLC0415 - after the handlers, on purpose

        run_app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; nothing of the run is left behind (`tcpscen clean` makes sure)\n")
        sys.exit(130)
