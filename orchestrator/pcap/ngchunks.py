"""The column reader's framing of pcapng (see `chunks`).

Enhanced Packet Blocks are sliced and decoded a chunk at a time, interface by interface, as
columns; Simple and obsolete Packet Blocks (rare) are decoded on the spot by the reference
decoders. The framing loop is inlined for speed and takes the format (block types and layouts,
byte-order marks, interface descriptions and their timestamp units) from `pcapng`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from orchestrator.pcap import columns, pcapng
from orchestrator.pcap.columns import (
    FAST_NEED,
    I64,
    Chunk,
    Group,
    RowFilter,
    Slice,
    Walks,
    assemble,
    decode,
    gather,
    no_columns,
)
from orchestrator.pcap.icmp import Found, icmp_error_in_frame
from orchestrator.pcap.links import header_cut
from orchestrator.pcap.pcapng import Iface
from orchestrator.pcap.reader import TcpCapture
from orchestrator.pcap.refill import Refill
from orchestrator.pcap.segment import MAX_RECORD, TcpPacket, seconds

__all__ = ["pcapng_chunks"]

_new = tuple.__new__

# An EPB's slice: from its length (after the block type) through its body, the longest link
# header (SLL2), IPv4 and TCP.
_SKIP = pcapng.BLOCK_HEADER.offsets["length"]
_NG_WIDTH = pcapng.EPB_DATA - _SKIP + 20 + FAST_NEED


def _ng_head(endian: str) -> list[tuple[str, str, int]]:
    """The slice's fields before the packet: the block's length, then the EPB's body."""
    _type, (_length, length_format, _at) = pcapng.BLOCK_HEADER.numpy_fields(endian, -_SKIP)
    return [
        ("blen", length_format, 0),
        *pcapng.EPB_BODY.numpy_fields(endian, pcapng.BLOCK_HEADER.size - _SKIP),
    ]


class _Section:
    """A pcapng section: its byte order, and its interfaces with their fast layouts (if any)."""

    def __init__(self, endian: str) -> None:
        self.endian = endian
        self.length = pcapng.BLOCK_HEADER.field_struct("length", endian).unpack_from
        self.u32x2 = pcapng.BLOCK_HEADER.struct(endian).unpack_from
        self.epb = pcapng.EPB_BODY.struct(endian).unpack_from
        self.ifaces: list[Iface] = []
        self.layouts: list[Slice | None] = []
        self._head = _ng_head(endian)
        self.head = np.dtype(
            {
                "names": [n for n, _f, _o in self._head],
                "formats": [f for _n, f, _o in self._head],
                "offsets": [o for _n, _f, o in self._head],
                "itemsize": _NG_WIDTH,
            }
        )

    def add(self, iface: Iface) -> None:
        self.ifaces.append(iface)
        data = pcapng.EPB_DATA - _SKIP
        self.layouts.append(Slice(iface, self._head, data, _NG_WIDTH) if iface.hdr_len is not None else None)

    def tns(self, buf: bytes | bytearray, block: int) -> int | None:
        """An Enhanced Packet Block's time as the reference reader computes it (None: invalid)."""
        iface, hi, lo, cap, _orig = self.epb(buf, block + pcapng.BLOCK_HEADER.size)
        if iface >= len(self.ifaces) or cap > self.length(buf, block + _SKIP)[0] - pcapng.EPB_OVERHEAD:
            return None
        ns: int = self.ifaces[iface].interface.time_ns(hi, lo)
        return ns


def pcapng_chunks(  # noqa: PLR0915 - the framing loop
    capture: TcpCapture, f: io.BufferedReader, walks: Walks | None = None, keep: RowFilter | None = None
) -> Iterator[Chunk]:
    """The chunks of a pcapng file, from its start. `walks`: the compiled steps (`walk`), whose
    `walk_epbs` steps over runs of Enhanced Packet Blocks (else this loop does, block by block).
    `keep`: which segments to hand out (`chunks.read_chunks`)."""
    ng = pcapng
    shb, idb, epb_type, pb_type, spb_type = ng.SHB, ng.IDB, ng.EPB, ng.PB, ng.SPB
    min_block, epb_data = ng.MIN_BLOCK, ng.EPB_DATA
    chunk_size = columns.CHUNK
    buffer = Refill(f, _NG_WIDTH + 8)  # every slice is `_NG_WIDTH` long, even a short last block's
    sec = _Section("<")
    frame = 0
    tcp = 0
    last_tns = 0
    pos = 0
    want = chunk_size
    stop = ""
    try:
        while not stop:
            if not buffer.fill(pos, want):
                if buffer.n:
                    what = "a block header" if buffer.n < min_block else "a block"
                    capture.cut(f"the file ends inside {what}", frame)
                break
            n = buffer.n
            buf = buffer.padded()
            u8 = buffer.array()
            pos = 0
            want = chunk_size
            run = _Run()  # EPBs since the last other packet block or section
            blocks, frames = run.blocks, run.frames
            groups: list[Group] = []
            rare: list[TcpPacket] = []
            icmp: list[tuple[int, int, Found]] = []
            u32x2 = sec.u32x2
            offsets = np.empty(n // epb_data + 1, dtype=np.int64) if walks is not None else None
            while n - pos >= min_block:  # a block header and, for a section, its mark
                if walks is not None and offsets is not None:
                    count, pos = walks.epbs(
                        u8, pos, n, min_block, epb_type, epb_data, MAX_RECORD, sec.endian == "<", offsets
                    )
                    if count:
                        run.arrays.append(offsets[:count].copy())
                        run.arrays.append(np.arange(frame + 1, frame + 1 + count, dtype=np.int64))
                        frame += count
                    if n - pos < min_block:
                        break
                btype, blen = u32x2(buf, pos)
                if btype == epb_type and epb_data <= blen <= MAX_RECORD and not blen % 4:
                    end = pos + blen
                    if end > n:
                        want = max(chunk_size, end - n)
                        break
                    frame += 1
                    blocks.append(pos)
                    frames.append(frame)
                    pos = end
                    continue
                order = None
                if btype == shb:
                    order = ng.section_order(bytes(buf[pos : pos + min_block]))
                    if order is None:
                        stop = "a corrupt section header"
                        break
                    (blen,) = ng.BLOCK_HEADER.field_struct("length", order).unpack_from(buf, pos + _SKIP)
                if blen < min_block or blen % 4 or blen > MAX_RECORD:
                    stop = f"a corrupt block (length {blen})"
                    break
                end = pos + blen
                if end > n:
                    want = max(chunk_size, end - n)
                    break
                if btype == epb_type:  # an EPB too short for its body: as the reference reader, not a packet
                    frame += 1
                elif order is not None:
                    groups += _epbs(capture, sec, buf, u8, run, walks, keep)
                    last_tns = run.last_tns(sec, buf, last_tns)
                    run = _Run()
                    blocks, frames = run.blocks, run.frames
                    sec = _Section(order)
                    u32x2 = sec.u32x2
                elif btype == idb:
                    face = Iface(ng.parse_idb(bytes(buf[pos:end]), 0, blen, sec.endian))
                    capture.linktypes.add(face.linktype)
                    sec.add(face)
                elif btype in (pb_type, spb_type):  # rare
                    frame += 1
                    groups += _epbs(capture, sec, buf, u8, run, walks, keep)
                    last_tns = run.last_tns(sec, buf, last_tns)
                    run = _Run()
                    blocks, frames = run.blocks, run.frames
                    last_tns = _rare_block(capture, sec, buf, pos, blen, btype, frame, last_tns, rare, icmp)
                pos = end
            groups += _epbs(capture, sec, buf, u8, run, walks, keep)
            last_tns = run.last_tns(sec, buf, last_tns)
            chunk, count = assemble(capture, groups, tcp, rare, icmp, keep)
            tcp += count
            if chunk is not None:
                yield chunk
        if stop:
            capture.cut(stop, frame)
    finally:
        capture.packets = frame
        capture.tcp_packets = tcp


@dataclass(slots=True)
class _Run:
    """Consecutive Enhanced Packet Blocks of one section: their offsets and frames, walked one
    by one (`blocks`, `frames`) or many at a time (`arrays`: offsets, then frames, ...), in
    file order (a run is walked one way or the other in stretches, the walk's first)."""

    blocks: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    arrays: list[I64] = field(default_factory=list)

    def where(self) -> tuple[I64, I64]:
        """Offsets and frames of the whole run, in file order."""
        offsets = [*self.arrays[0::2], np.array(self.blocks, dtype=np.int64)]
        frames = [*self.arrays[1::2], np.array(self.frames, dtype=np.int64)]
        off, fr = np.concatenate(offsets), np.concatenate(frames)
        if self.arrays and self.blocks:  # both ways in one run: back into file order
            order = np.argsort(fr, kind="stable")
            off, fr = off[order], fr[order]
        return off, fr

    def last_tns(self, sec: _Section, buf: bytes | bytearray, before: int) -> int:
        """The time of the run's last valid EPB (what a Simple Packet Block after it takes)."""
        off, _fr = self.where()
        for k in range(len(off) - 1, -1, -1):  # nearly always the last one
            tns = sec.tns(buf, int(off[k]))
            if tns is not None:
                return tns
        return before


def _epbs(
    capture: TcpCapture,
    sec: _Section,
    buf: bytes | bytearray,
    u8: npt.NDArray[np.uint8],
    run: _Run,
    walks: Walks | None,
    keep: RowFilter | None,
) -> list[Group]:
    """Decode a run of Enhanced Packet Blocks, interface by interface (`u8`: the chunk's bytes,
    padded)."""
    offsets, frames = run.where()
    if not len(offsets):
        return []
    joined = gather(u8, offsets, _SKIP, _NG_WIDTH, walks).reshape(-1)
    head = joined.view(sec.head)
    ids = head["iface"].astype(np.int64)
    room = head["blen"].astype(np.int64) - pcapng.EPB_OVERHEAD
    valid = (ids < len(sec.ifaces)) & (head["cap"].astype(np.int64) <= room)
    groups = []
    for k in np.flatnonzero(np.bincount(ids[valid])).tolist():  # the interfaces there are, in order
        m = valid & (ids == k)
        face, lay = sec.ifaces[k], sec.layouts[k]
        if lay is None:  # no fixed IPv4 offset: the reference decoders, one by one
            groups.append(_slow_group(capture, face, buf, offsets[m], frames[m], sec))
            continue
        rec = joined.view(lay.dtype)
        if not m.all():
            rec = rec[m]
        units = (rec["hi"].astype(np.uint64) << np.uint64(32)) | rec["lo"].astype(np.uint64)
        # Interface.time_ns, for the whole run at once
        if int(units.max()) * face.num < 1 << 62:
            tns = units.astype(np.int64) * face.num // face.den + face.offset_ns
        else:  # would overflow 64 bits: Python's integers, as the reference reader
            tns = np.array(
                [face.interface.time_ns(u >> 32, u & 0xFFFFFFFF) for u in units.tolist()], dtype=np.int64
            )
        times = (tns // 1_000_000_000).astype(np.float64) + (tns % 1_000_000_000).astype(np.float64) / 1e9
        groups.append(
            decode(capture, lay, buf, rec, frames[m], offsets[m] + pcapng.EPB_DATA, tns, times, walks, keep)
        )  # as `seconds`
    return groups


def _slow_group(
    capture: TcpCapture, iface: Iface, buf: bytes | bytearray, offsets: I64, frames: I64, sec: _Section
) -> Group:
    rare: list[TcpPacket] = []
    icmp: list[tuple[int, int, Found]] = []
    for block, fr in zip(offsets.tolist(), frames.tolist(), strict=True):
        _iface, _hi, _lo, cap, orig = sec.epb(buf, block + pcapng.BLOCK_HEADER.size)
        tns = sec.tns(buf, block)
        assert tns is not None  # checked valid
        _decode_one(capture, iface, buf, block + pcapng.EPB_DATA, cap, orig, fr, tns, rare, icmp)
    return Group(no_columns(capture.name), rare, icmp, np.zeros(len(frames), dtype=np.bool_), frames)


def _rare_block(
    capture: TcpCapture,
    sec: _Section,
    buf: bytes | bytearray,
    block: int,
    blen: int,
    btype: int,
    frame: int,
    last_tns: int,
    rare: list[TcpPacket],
    icmp: list[tuple[int, int, Found]],
) -> int:
    """A Simple or obsolete Packet Block, as the reference reader reads it. Returns the time of
    the latest packet (Simple Packet Blocks have none of their own)."""
    e = sec.endian
    body = block + pcapng.BLOCK_HEADER.size
    if btype == pcapng.PB:
        iface_id, _drops, hi, lo, cap, orig = pcapng.PB_BODY.struct(e).unpack_from(buf, body)
        if iface_id >= len(sec.ifaces) or cap > blen - pcapng.EPB_OVERHEAD:
            return last_tns
        iface = sec.ifaces[iface_id]
        data = block + pcapng.PB_DATA
        tns = iface.interface.time_ns(hi, lo)
        last_tns = tns
    else:
        (orig,) = pcapng.SPB_BODY.struct(e).unpack_from(buf, body)
        if not sec.ifaces:
            return last_tns
        iface = sec.ifaces[0]
        cap = min(orig, blen - pcapng.SPB_DATA - pcapng.BLOCK_TRAILER.size, iface.snaplen or orig)
        data = block + pcapng.SPB_DATA
        tns = last_tns
    _decode_one(capture, iface, buf, data, cap, orig, frame, tns, rare, icmp)
    return last_tns


def _decode_one(
    capture: TcpCapture,
    iface: Iface,
    buf: bytes | bytearray,
    data: int,
    cap: int,
    orig: int,
    frame: int,
    tns: int,
    rare: list[TcpPacket],
    icmp: list[tuple[int, int, Found]],
) -> None:
    packet = bytes(buf[data : data + cap])  # bytes, not the reused read buffer (decoders keep keys of it)
    fields_ = iface.decode(packet, 0, cap, orig if orig > cap else cap)
    if fields_ is None:
        capture.headers_cut += header_cut(iface.linktype, packet, 0, cap, orig)
        found = icmp_error_in_frame(iface.linktype, packet, 0, cap)
        if found is not None:
            icmp.append((frame, tns, found))
    else:
        rare.append(_new(TcpPacket, (frame, seconds(tns), *fields_, capture.name, tns)))
