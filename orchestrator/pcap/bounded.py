"""A capture file read no further than a given size.

A shared analysis (`tcp.parallel`) has every process read the capture itself: were the file
still being written (tcpdump -w running), each would read to a different end. Read through
`upto`, all stop where the file ended when the analysis started, as one reader would.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["upto"]


class _Upto(io.RawIOBase):
    def __init__(self, f: io.BufferedReader, limit: int) -> None:
        self._f = f
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, b: WriteableBuffer) -> int:
        view = memoryview(b).cast("B")
        n = min(len(view), self._left)
        if n <= 0:
            return 0
        got = self._f.readinto(view[:n])
        self._left -= got
        return got

    def close(self) -> None:
        self._f.close()
        super().close()


def upto(f: io.BufferedReader, limit: int) -> io.BufferedReader:
    """`f` (open for reading at its start), ending after `limit` bytes."""
    return io.BufferedReader(_Upto(f, limit), buffer_size=1 << 16)
