#!/usr/bin/env python3
"""tcpscen built-in agent: a small TCP server or client that reports what the application sees.

Usage: ``python3 agent.py '<json config>'``. Every event is one JSON object per line on stdout.
Stdlib only, so the same files run in the Debian bookworm image and on the host (tests). The
config and the events are defined in wire.py; roles.py and connection.py do the work.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

# wire.py has one copy, in the orchestrator package, so the two sides cannot drift. The image
# build copies it next to this file. Run from a checkout (the unit tests, or by hand), it is
# imported from the package's folder as the same top-level `wire`, without importing the
# orchestrator package itself (whose dependencies a bare python3 may lack). Appended, so that
# nothing in that folder can shadow a stdlib module.
_HERE = Path(__file__).resolve().parent
if not (_HERE / "wire.py").is_file():
    sys.path.append(str(_HERE.parent.parent / "orchestrator" / "agent"))

import roles  # noqa: E402
import wire  # noqa: E402
from emitter import Emitter  # noqa: E402


class Terminated(BaseException):
    """Raised from the SIGTERM/SIGINT handler.

    A BaseException so that the `except OSError` / `except Exception` handlers around socket calls
    cannot swallow it: it has to unwind straight to main().
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def parse_argv(argv: list[str]) -> wire.Config:
    if len(argv) != 1:
        raise wire.ConfigError(f"expected exactly one argument holding the JSON config, got {len(argv)}")
    return wire.Config.from_json(argv[0])


def raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


# Signals whose default action ends a process. The agent is PID 1 of its container, and the
# kernel drops a signal that PID 1 has no handler for (SIGNAL_UNKILLABLE), SIGKILL and SIGSTOP
# aside: measured, a `kill` with SIGHUP changed nothing, the connection stayed ESTAB. So each
# gets a handler that ends the agent as the default action would end any other process: at
# once, sockets closed by the kernel (a FIN, or an RST with unread data), exit 128 + N.
FATAL_BY_DEFAULT = tuple(
    getattr(signal, name)
    for name in (
        "SIGHUP",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGALRM",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGSYS",
    )
    if hasattr(signal, name)
)


def die_of(emitter: Emitter) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        code = 128 + signum
        emitter.emit_last(wire.Event.EXIT, code=code, signal=signal.Signals(signum).name)
        os._exit(code)  # no unwinding: no close() of ours, the kernel closes as on a signal death

    return handler


def main(argv: list[str]) -> int:
    try:
        config = parse_argv(argv)
    except wire.ConfigError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the JSON error text contained
        print(f"tcpscen agent: bad config: {message}", file=sys.stderr)
        return wire.EXIT_BAD_CONFIG
    signal.signal(signal.SIGTERM, raise_terminated)
    signal.signal(signal.SIGINT, raise_terminated)
    emitter = Emitter(config.host)
    for signum in FATAL_BY_DEFAULT:
        signal.signal(signum, die_of(emitter))
    try:
        emitter.emit(wire.Event.START, pid=os.getpid(), config=config.to_dict())
        run = roles.run_server if config.role == "server" else roles.run_client
        code = run(config, emitter)
    except Terminated as stop:
        emitter.emit(wire.Event.EXIT, code=wire.EXIT_OK, signal=signal.Signals(stop.signum).name)
        return wire.EXIT_OK
    emitter.emit(wire.Event.EXIT, code=code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
