"""The array loop (`arrayloop`) compiled by numba, when numba is installed (the ``fast`` extra)
and the capture is big enough to pay for it.

numba takes about 0.35 s to import and 0.3 s to load the compiled loop from its cache (the
first run compiles it, some seconds, and caches it next to the source, or in
``NUMBA_CACHE_DIR``); the compiled loop then analyses a million segments in a small fraction of
a second, where the vectorised pass (`vector`) takes seconds. So only captures of
`MIN_BYTES` or more use it; smaller ones, and every capture where numba is missing, take
`vector`, with the same result.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.pcap.columns import Chunk
from orchestrator.pcap.reader import TcpCapture
from orchestrator.tcp.fastpass import Kernels, analyze_arrays, warm_up
from orchestrator.tcp.flows import Conn
from orchestrator.tcp.vector import analyze_chunks

__all__ = ["MIN_BYTES", "Pass", "available", "kernels", "pass_for"]

MIN_BYTES = 8 << 20

# A pass over a capture's chunks: its connections, in tcp.stream order.
Pass = Callable[[Iterable[Chunk]], list[Conn]]


def pass_for(capture: TcpCapture) -> Pass:
    """The pass for `capture`: the compiled one (loaded now, so that forked processes inherit
    it) for a big capture where numba is installed, else the vectorised one. TCPSCEN_NO_JIT=1
    turns the compiled one off."""
    try:
        size = os.path.getsize(capture.path)
    except OSError:
        size = 0
    if size < MIN_BYTES or os.environ.get("TCPSCEN_NO_JIT") or not available():
        return analyze_chunks
    k = kernels()
    return lambda chunks: analyze_arrays(chunks, k)


@functools.cache
def available() -> bool:
    """Whether numba is installed (looked for, not imported)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # hidden, or half-removed
        return False


@functools.cache
def kernels() -> Kernels:
    """The compiled loop, compiled or loaded from numba's cache now."""
    import numba  # noqa: PLC0415 - only for big captures: it takes a third of a second

    from orchestrator.tcp import arrayloop  # noqa: PLC0415

    def jit(f: Callable[..., Any]) -> Any:
        return numba.njit(cache=True, nogil=True)(f)

    # The helpers first: the loop calls them compiled.
    arrayloop._covers = jit(arrayloop._covers)
    arrayloop._slot = jit(arrayloop._slot)
    arrayloop._watching = jit(arrayloop._watching)
    arrayloop._append = jit(arrayloop._append)
    loop = jit(arrayloop.analyze_rows)
    rehash = jit(arrayloop.rehash)
    warm = Kernels(loop, rehash)
    warm_up(warm)  # compiles, or loads from the cache, here rather than in each child
    return warm
