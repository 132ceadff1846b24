"""One capture's analysis shared between processes, by connection.

Each process reads the whole file but analyses only the connections in its part (a hash of the
connection's addresses and ports, see `pcapfile.part_of`): reading and skipping a segment costs
a fraction of analysing it, and connections are independent, so N processes on N cores finish
close to N times sooner. The parent analyses part 0 itself while forked children do the rest,
then takes their summaries (pickled through a pipe), puts the connections back in order of
first frame and renumbers their `stream`. The result is the same `Analysis` as one process
gives; `tests/unit/test_parallel_analysis.py` checks that.

Fork is used (where the platform has it) so that children start in milliseconds with the
modules already imported. Captures under `MIN_BYTES` stay in one process: there forking costs
more than it saves.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import sys
from multiprocessing.connection import Connection

from orchestrator.errors import TcpscenError
from orchestrator.verdict.analysis import Analysis, analyze_capture
from orchestrator.verdict.pcapfile import TcpCapture

__all__ = ["MAX_AUTO", "MIN_BYTES", "analyze_shared", "auto_processes"]

MIN_BYTES = 16 << 20
MAX_AUTO = 4  # beyond this, the whole-file reading each process does dominates


def auto_processes(capture: TcpCapture) -> int:
    """Processes for a capture when the user did not say: one per usable CPU (at most
    `MAX_AUTO`) for a big capture, else one."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        size = os.path.getsize(capture.path)
    except OSError:
        return 1
    if size < MIN_BYTES:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, MAX_AUTO))


def analyze_shared(capture: TcpCapture, processes: int) -> Analysis:
    """Analyse `capture` with `processes` processes (1: in this one)."""
    if processes <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return analyze_capture(capture)
    ctx = multiprocessing.get_context("fork")
    children: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    try:
        for part in range(1, processes):
            receive, send = ctx.Pipe(duplex=False)
            child = ctx.Process(
                target=_child,
                args=(send, capture, part, processes),
                name=f"tcpscen-analyze-{part}",
                daemon=True,
            )
            child.start()
            send.close()
            children.append((child, receive))
        parts = [analyze_capture(capture, part=0, parts=processes)]
        for forked, receive in children:
            parts.append(_receive(forked, receive, capture))
        return _merge(parts)
    finally:
        for forked, receive in children:
            receive.close()
            if forked.is_alive():
                forked.terminate()
            forked.join()


def _child(send: Connection, capture: TcpCapture, part: int, parts: int) -> None:
    """In a forked child: analyse one part and send it back, then leave without running the
    parent's exit handlers (they belong to the parent)."""
    code = 0
    try:
        analysis = analyze_capture(capture, part=part, parts=parts)
        send.send_bytes(pickle.dumps(analysis, protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException as exc:  # reported to the parent, whatever it is
        code = 1
        with contextlib.suppress(BaseException):  # else the parent sees the pipe close
            send.send_bytes(pickle.dumps(f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()
        sys.stdout.flush()
        os._exit(code)


def _receive(
    child: multiprocessing.process.BaseProcess, receive: Connection, capture: TcpCapture
) -> Analysis:
    try:
        got = pickle.loads(receive.recv_bytes())  # from our own forked child
    except EOFError:
        child.join()
        raise TcpscenError(
            f"{capture.path}: an analysis process ended without a result (exit {child.exitcode})"
        ) from None
    if isinstance(got, str):
        raise TcpscenError(f"{capture.path}: an analysis process failed: {got}")
    if not isinstance(got, Analysis):
        raise TcpscenError(f"{capture.path}: an analysis process sent {type(got).__name__}")
    return got


def _merge(parts: list[Analysis]) -> Analysis:
    """The parts' connections in order of first frame (tcp.stream order), renumbered. Every
    process read every frame, so the file's counters and ICMP errors are part 0's."""
    first = parts[0]
    conns = [c for a in parts for c in a.connections]
    conns.sort(key=lambda c: c.first_frame.frame if c.first_frame else 0)
    for stream, c in enumerate(conns):
        c.stream = stream
    first.connections = conns
    return first
