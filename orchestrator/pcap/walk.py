"""The column reader's byte-level steps, over a chunk's bytes as uint8 arrays: the framing
walks (where each record, classic pcap, or Enhanced Packet Block, pcapng, starts) and the
decoding of the fast layout's fields. Plain Python, compiled by numba for big captures
(`tcp.compiled`); otherwise the framing loops in `chunks` and `ngchunks` walk in Python and
`columns.decode` decodes with numpy, and they agree with these by construction (same steps,
same stops; the tests run both).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["decode_fields", "gather_slices", "walk_epbs", "walk_records"]

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


def decode_fields(raw: U8, cap: I64, orig: I64, at: I64, need: int, hdr: int, out: I64) -> None:
    """`columns.decode`'s arithmetic, record by record, over the records' slices (`raw`, one row
    each): `at` the offsets in a slice of the link's EtherType (-1: none) and of IPv4's version,
    total length, fragment, protocol, addresses, TCP's ports, seq, ack, offset+flags, window.
    Writes per record `k` into `out[:, k]` (a row per field): simple, good, src, sport, dst,
    dport, seq, ack, flags, window, payload length, protocol."""
    e, vi, tl, fr, pr, sa, da, sp, dp, sq, ak, of, wn = (
        at[0], at[1], at[2], at[3], at[4], at[5], at[6], at[7], at[8], at[9], at[10], at[11], at[12],
    )  # fmt: skip
    for k in range(raw.shape[0]):
        row = raw[k]
        simple = row[vi] == 0x45 and (_u16(row, fr) & 0x1FFF) == 0 and cap[k] >= need
        if e >= 0 and _u16(row, e) != 0x0800:
            simple = False
        total = _u16(row, tl)
        if total == 0:  # TSO: the frame's length stands for it
            total = orig[k] - hdr
        offflags = _u16(row, of)
        plen = total - 20 - (offflags >> 12) * 4
        proto = row[pr]
        out[0, k] = 1 if simple else 0
        out[1, k] = 1 if simple and proto == 6 and plen >= 0 and offflags >= 0x5000 else 0
        out[2, k] = _u32(row, sa, False)
        out[3, k] = _u16(row, sp)
        out[4, k] = _u32(row, da, False)
        out[5, k] = _u16(row, dp)
        out[6, k] = _u32(row, sq, False)
        out[7, k] = _u32(row, ak, False)
        out[8, k] = offflags & 0x0FFF
        out[9, k] = _u16(row, wn)
        out[10, k] = plen
        out[11, k] = proto


def _u16(row: U8, at: int) -> int:
    return int((np.int64(row[at]) << 8) | np.int64(row[at + 1]))


def gather_slices(buf: U8, offsets: I64, skip: int, out: U8) -> None:
    """Copy each record's slice (`out`'s width, from `skip` past its offset) into a row of `out`:
    numpy's `buf[offsets[:, None] + skip + arange(width)]` without its index array."""
    width = out.shape[1]
    for k in range(len(offsets)):
        start = offsets[k] + skip
        out[k, :] = buf[start : start + width]
