"""The console script's entry: signals are taken over before the heavy imports, so Ctrl-C or
SIGTERM at any moment ends in the same clean way (exit 130, no traceback), saying whether the
clean-up left anything (`interrupts`)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from orchestrator import interrupts


def main() -> None:
    # SIGTERM takes the same road as Ctrl-C, through every `finally` that cleans up.
    signal.signal(signal.SIGINT, interrupts.on_signal)
    signal.signal(signal.SIGTERM, interrupts.on_signal)
    try:
        from orchestrator.cli import analyze  # noqa: PLC0415 - after the handlers, on purpose
        from orchestrator.cli.app import main as run_app  # noqa: PLC0415

        analyze.ends_process = True  # see _end_quickly
        run_app()
    except SystemExit as done:
        _end_quickly(done.code)
        raise
    except (interrupts.Interrupted, KeyboardInterrupt):
        # Done: a signal from now on would only kill the interpreter mid-exit (its handlers are
        # reset while it finalises) and hide the line below.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stderr.write(interrupts.farewell() + "\n")
        sys.exit(130)
    except interrupts.CleanupAborted:
        # What is left was said when the signal came. Parallel runs' threads may still be in their
        # clean-up: end now, as asked, without waiting for them.
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(130)


def _end_quickly(code: object) -> None:
    """After `tcpscen analyze` has written everything, end without the interpreter's teardown:
    freeing a big analysis object by object takes longer than the output did (mypy ends the
    same way). Every other command ends normally."""
    command = sys.modules.get("orchestrator.cli.analyze")
    if command is None or not getattr(command, "finished", False):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the reader went away (| head): nothing more to say
        os._exit(1)
    os._exit(code if isinstance(code, int) else 0)
