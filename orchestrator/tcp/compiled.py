"""The array loop (`arrayloop`) and the framing walks (`pcap.walk`) compiled by numba, when
numba is installed (the ``fast`` extra) and the capture is big enough to pay for it.

numba takes 0.2 to 0.35 s to import and 0.1 to 0.3 s to load the compiled functions from its
cache, without its target's refresh (`_load_quickly`; the first run compiles them, some
seconds, and caches them next to the source, or in ``NUMBA_CACHE_DIR``); then reading and
analysing a million segments takes about half the time the vectorised pass (`vector`) and the
Python framing loops take. So only captures of `MIN_BYTES` or more use it; smaller ones, and
every capture where numba is missing, take `vector`, with the same result.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.pcap.chunks import Walks
from orchestrator.pcap.columns import Chunk
from orchestrator.pcap.reader import TcpCapture
from orchestrator.tcp.fastpass import Kernels, analyze_arrays, warm_up
from orchestrator.tcp.flows import Conn
from orchestrator.tcp.sizing import size_of
from orchestrator.tcp.vector import analyze_chunks

__all__ = ["MIN_BYTES", "Pass", "Plan", "available", "compiled", "plan_for"]

MIN_BYTES = 32 << 20

# A pass over a capture's chunks: its connections, in tcp.stream order.
Pass = Callable[[Iterable[Chunk]], list[Conn]]


@dataclass(frozen=True, slots=True)
class Plan:
    """How to read and analyse a capture: `read_chunks`' walks (None: in Python), and the pass."""

    walks: Walks | None
    passing: Pass


PLAIN_PLAN = Plan(None, analyze_chunks)


def plan_for(capture: TcpCapture) -> Plan:
    """The plan for `capture`: compiled (loaded now, so that forked processes inherit it) for a
    big capture where numba is installed, else numpy and Python. TCPSCEN_NO_JIT=1 turns the
    compiled one off."""
    if size_of(capture) < MIN_BYTES or os.environ.get("TCPSCEN_NO_JIT") or not available():
        return PLAIN_PLAN
    try:
        walks, k = compiled()
    except Exception:  # a numba that does not work here (its numpy, its LLVM): the plain way
        return PLAIN_PLAN
    return Plan(walks, lambda chunks: analyze_arrays(chunks, k))


@functools.cache
def available() -> bool:
    """Whether numba is installed (looked for, not imported)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # hidden, or half-removed
        return False


@functools.cache
def compiled() -> tuple[Walks, Kernels]:
    """The framing walks and the array loop, compiled or loaded from numba's cache now."""
    import numba  # noqa: PLC0415 - only for big captures: it takes a third of a second

    from orchestrator.pcap import walk  # noqa: PLC0415
    from orchestrator.tcp import arrayloop, keys  # noqa: PLC0415

    def jit(f: Callable[..., Any]) -> Any:
        return _load_quickly(numba.njit(cache=True, nogil=True)(f))

    # The helpers first: the compiled functions call them compiled (numba resolves a
    # function's globals when it compiles it).
    walk._u32 = jit(walk._u32)
    walk._u16 = jit(walk._u16)
    arrayloop._covers = jit(arrayloop._covers)
    arrayloop._slot = jit(arrayloop._slot)
    arrayloop._watching = jit(arrayloop._watching)
    arrayloop._link = jit(arrayloop._link)
    arrayloop._append = jit(arrayloop._append)
    arrayloop._keep = jit(arrayloop._keep)
    arrayloop._send = jit(arrayloop._send)
    keys.key_hash = jit(keys.key_hash)
    walks = Walks(
        jit(walk.walk_records), jit(walk.walk_epbs), jit(walk.decode_fields), jit(walk.gather_slices)
    )
    k = Kernels(jit(arrayloop.analyze_rows), jit(arrayloop.rehash), jit(keys.key_rows))
    # Each is compiled (or loaded) on its first call: here, rather than in each child.
    warm_up(k)
    some = np.zeros(64, dtype=np.uint8)
    out = np.zeros(8, dtype=np.int64)
    walks.records(some, 0, 16, 8, True, out)
    walks.epbs(some, 0, 0, 12, 6, 32, 1 << 18, True, out)
    walks.gather(some, out[:1], 0, np.zeros((1, 8), dtype=np.uint8))
    at = np.zeros(13, dtype=np.int64)  # every field at offset 0 of a 64-byte slice
    walks.fields(some.reshape(1, 64), out[:1], out[:1], at, 36, 14, np.zeros((12, 1), dtype=np.int64))
    return walks, k


def _load_quickly(dispatcher: Any) -> Any:
    """`dispatcher` loading its cached code without refreshing numba's target first: the refresh
    imports and registers every implementation numba has (arrays, dicts, random, ...), which only
    compiling needs, a third of numba's time to load the cached functions here (0.49 -> 0.33 s on
    a loaded machine, the same code loaded). The cached code needs only numba's runtime (NRT, for
    what it allocates), which this starts. A miss compiles, and the compiler refreshes the target
    itself. Left as numba makes it where its cache is not as this expects (another numba)."""
    cache: Any = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "_load_overload", None)
    if load is None or not hasattr(cache, "load_overload"):
        return dispatcher
    from numba.core.runtime.nrt import rtsys  # noqa: PLC0415 - numba only for big captures

    def load_overload(sig: Any, target_context: Any) -> Any:
        rtsys.initialize(target_context)
        return load(sig, target_context)

    cache.load_overload = load_overload
    return dispatcher
