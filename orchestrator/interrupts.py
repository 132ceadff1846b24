"""Ctrl-C and SIGTERM, held back while an engine object is being created.

An interrupt that lands inside `networks.create` stops our wait for the answer, not the engine:
the network appears a moment later, after the clean-up has looked for it. So creation calls run
shielded; an interrupt that arrives meanwhile is raised the moment the call returns, when the
new object is known and the clean-up will find it.
"""

from __future__ import annotations

import _thread
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_pending = threading.Event()
_depth = 0
_lock = threading.Lock()


def on_signal(signum: int, frame: FrameType | None) -> None:
    """The handler for SIGINT and SIGTERM (installed by the CLI's entry)."""
    if _depth > 0:
        _pending.set()
        return
    raise KeyboardInterrupt


@contextmanager
def shielded() -> Iterator[None]:
    global _depth  # noqa: PLW0603 - one process-wide count: signals arrive in the main thread only
    with _lock:
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            fire = _depth == 0 and _pending.is_set()
            if fire:
                _pending.clear()
        if fire:
            if threading.current_thread() is threading.main_thread():
                raise KeyboardInterrupt
            _thread.interrupt_main()  # a worker's shield (-j): hand the interrupt back to the main thread
