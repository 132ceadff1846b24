"""Prints the agent's events, one JSON line each, as wire defines them."""

from __future__ import annotations

import errno
import sys
import threading
import time
from typing import Any

import wire


class Emitter:
    """Writes events as JSON lines; shared by the server's connection threads, hence the lock."""

    def __init__(self, host: str) -> None:
        self._host = host
        self._lock = threading.Lock()

    def emit(self, event: wire.Event, **fields: Any) -> None:
        with self._lock:
            self._write(event, fields)

    def emit_last(self, event: wire.Event, **fields: Any) -> None:
        """From a signal handler, just before the process ends: the handler runs in the main
        thread, which may hold the lock itself (mid-emit), so it waits for it only briefly."""
        taken = self._lock.acquire(timeout=0.2)
        try:
            self._write(event, fields)
        finally:
            if taken:
                self._lock.release()

    def _write(self, event: wire.Event, fields: dict[str, Any]) -> None:
        # Wall clock for comparing with pcap timestamps (same kernel clock); monotonic for intervals.
        record: dict[str, Any] = {"t": time.time(), "mono": time.monotonic(), "host": self._host}
        record["event"] = event.value
        record.update(fields)
        line = wire.event_line(record) + "\n"
        try:
            sys.stdout.write(line)
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            # Nobody is listening any more; dying here would change the TCP behaviour under test.
            pass


def describe_error(op: str, exc: OSError) -> dict[str, Any]:
    """The fields of an `error` event."""
    code = exc.errno if exc.errno is not None else 0
    return {
        "op": op,
        "errno": errno.errorcode.get(code, str(code)),
        "code": code,
        "message": exc.strerror or str(exc),
    }
