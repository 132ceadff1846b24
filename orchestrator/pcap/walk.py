"""The framing walks of the column reader, over a chunk's bytes as a uint8 array: where each
record (classic pcap) or Enhanced Packet Block (pcapng) starts. Plain Python, compiled by numba
for big captures (`tcp.compiled`); the framing loops in `chunks` and `ngchunks` do the same
walk in Python otherwise, and agree with these by construction (same steps, same stops; the
tests run both).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["walk_epbs", "walk_records"]

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


def _u32(buf: U8, at: int, little: bool) -> int:
    b0, b1, b2, b3 = np.int64(buf[at]), np.int64(buf[at + 1]), np.int64(buf[at + 2]), np.int64(buf[at + 3])
    if little:
        return int(b0 | (b1 << 8) | (b2 << 16) | (b3 << 24))
    return int(b3 | (b2 << 8) | (b1 << 16) | (b0 << 24))


def walk_records(buf: U8, n: int, rec_hdr: int, cap_at: int, little: bool, out: I64) -> tuple[int, int, int]:
    """Classic pcap records from offset 0 of `buf` (n bytes): their offsets into `out`. Returns
    (records, where the walk stopped, the captured length of a record that does not fit there,
    or -1 if the stop is the end of the bytes)."""
    pos = 0
    k = 0
    while pos <= n - rec_hdr:
        cap = _u32(buf, pos + cap_at, little)
        end = pos + rec_hdr + cap
        if end > n:
            return k, pos, cap
        out[k] = pos
        k += 1
        pos = end
    return k, pos, -1


def walk_epbs(
    buf: U8,
    pos: int,
    n: int,
    min_block: int,
    epb: int,
    epb_data: int,
    max_record: int,
    little: bool,
    out: I64,
) -> tuple[int, int]:
    """pcapng Enhanced Packet Blocks from `pos`, as long as they come whole: their offsets into
    `out`. Returns (blocks, where the walk stopped: another kind of block, or one cut short)."""
    k = 0
    while n - pos >= min_block:
        btype = _u32(buf, pos, little)
        blen = _u32(buf, pos + 4, little)
        if btype != epb or blen < epb_data or blen > max_record or blen % 4 or pos + blen > n:
            break
        out[k] = pos
        k += 1
        pos += blen
    return k, pos
