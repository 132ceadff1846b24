"""How a capture is analysed, chosen by its size before anything heavy is imported.

A small capture (under `LOOP_BYTES`, the common case: a run's own captures) goes through the
reference loop in this process: importing numpy alone takes longer than the loop takes over
such a capture. A bigger one is read as columns by the vectorised or compiled pass
(`analysis.analyze_capture`), and from `SHARED_BYTES` shared between processes (`parallel`).
The result is the same every way.
"""

from __future__ import annotations

import multiprocessing
import os

from orchestrator.pcap.reader import TcpCapture, has_columns

__all__ = ["LOOP_BYTES", "MAX_AUTO", "SHARED_BYTES", "auto_processes", "is_small", "size_of"]

# Measured (bench's 'many' shape, whole command, best of 3): the loop is faster up to about
# 12 MB (at 7.7 MB: 1.06 s against 1.23 s; at 15 MB: 1.95 s against 1.8 s).
LOOP_BYTES = 8 << 20
SHARED_BYTES = 16 << 20
MAX_AUTO = 4


def size_of(capture: TcpCapture) -> int:
    """The capture file's size in bytes (0 if it cannot be told: a pipe, a vanished file)."""
    try:
        return os.path.getsize(capture.path)
    except OSError:
        return 0


def is_small(capture: TcpCapture) -> bool:
    """Whether `capture` is analysed by the reference loop alone (no numpy)."""
    return size_of(capture) < LOOP_BYTES


def auto_processes(capture: TcpCapture) -> int:
    """Processes for a capture when the user did not say: one per usable CPU (at most
    `MAX_AUTO`) for a big capture read as columns, else one (every process reads the whole
    capture: segments read one by one by the reference reader would cost each the whole read)."""
    if size_of(capture) < SHARED_BYTES or not has_columns(capture):
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_AUTO))
