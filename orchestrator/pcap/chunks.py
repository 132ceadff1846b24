"""The column reader: a capture's TCP segments, a chunk of the file at a time, as columns
(`columns`) where it can, else as (position, segment) pairs; and its framing of classic pcap.

The framing loop is inlined for speed and takes the format (magic, record header, timestamp
unit) from `pcap`; pcapng has its own loop, in `ngchunks`. A capture whose link type has no
fixed IPv4 offset is read by the reference reader, in batches of pairs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from itertools import islice

import numpy as np

from orchestrator.pcap import columns, pcap
from orchestrator.pcap.columns import Chunk, RowFilter, Slice, Walks, assemble, decode, gather
from orchestrator.pcap.links import Link
from orchestrator.pcap.ngchunks import pcapng_chunks
from orchestrator.pcap.reader import MAX_RECORD, TcpCapture, has_columns
from orchestrator.pcap.refill import Refill

__all__ = ["RowFilter", "Walks", "has_columns", "read_chunks"]

PAIRS_PER_CHUNK = 1 << 16


def read_chunks(
    capture: TcpCapture, walks: Walks | None = None, keep: RowFilter | None = None
) -> Iterator[Chunk]:
    """The capture's TCP segments, a chunk at a time; the capture's counters are set as iterating it
    would set them. `walks`: the framing walks compiled (`walk`), else the loops walk in Python.
    `keep`: which segments to hand out (None: all); each keeps its position among all."""
    if not has_columns(capture):
        it = capture.pairs()
        while batch := list(islice(it, PAIRS_PER_CHUNK)):
            if keep is not None:
                batch = [(i, p) for i, p in batch if keep.packet(p)]
            if batch:
                yield Chunk(pairs=batch)
        return
    capture.reset()
    f = capture.open()
    try:
        if capture.format == "pcap":
            yield from _pcap(capture, f, walks, keep)
        else:
            yield from pcapng_chunks(capture, f, walks, keep)
    finally:
        f.close()


def _pcap(  # noqa: PLR0915 - the framing loop
    capture: TcpCapture, f: io.BufferedReader, walks: Walks | None, keep: RowFilter | None
) -> Iterator[Chunk]:
    header = pcap.parse_header(f.read(pcap.FILE_HEADER.size))
    link = Link(header.linktype)
    capture.linktypes.add(link.linktype)
    kind = header.kind
    rec_hdr = kind.record.size
    lay = Slice(link, pcap.RECORD_HEADER.numpy_fields(header.endian), rec_hdr)
    ns_per_unit, s_per_unit = kind.ns_per_unit, kind.s_per_unit
    width = lay.width
    cap_at = pcap.RECORD_HEADER.offsets["cap"]
    unpack_cap = pcap.RECORD_HEADER.field_struct("cap", header.endian).unpack_from
    little = header.endian == "<"
    chunk_size = columns.CHUNK
    buffer = Refill(f, width)  # every slice is `width` long, even a short last record's
    frame = 0
    tcp = 0
    pos = 0
    want = chunk_size
    try:
        while True:
            if not buffer.fill(pos, want):
                if buffer.n:
                    what = "a record header" if buffer.n < rec_hdr else "a packet"
                    capture.cut(f"the file ends inside {what}", frame)
                break
            n = buffer.n
            u8 = buffer.array()
            corrupt = 0
            want = chunk_size
            if walks is not None:
                offsets = np.empty(n // rec_hdr + 1, dtype=np.int64)
                count, pos, cap = walks.records(u8, n, rec_hdr, cap_at, little, offsets)
                offsets = offsets[:count]
            else:
                padded = buffer.padded()
                found: list[int] = []
                app = found.append
                pos = 0
                last = n - rec_hdr
                cap = -1
                while pos <= last:
                    cap = unpack_cap(padded, pos + cap_at)[0]
                    end = pos + rec_hdr + cap
                    if end > n:
                        break
                    app(pos)
                    pos = end
                else:
                    cap = -1
                offsets = np.array(found, dtype=np.int64)
            if cap >= 0:  # a record that does not fit: the next read brings the rest of it
                if cap > MAX_RECORD:
                    corrupt = cap
                want = max(chunk_size, pos + rec_hdr + cap - n)
            if len(offsets):
                rec = gather(u8, offsets, 0, width, walks).view(lay.dtype).reshape(-1)
                starts = offsets
                sec = rec["sec"].astype(np.int64)
                frac = rec["frac"].astype(np.int64)
                group = decode(
                    capture,
                    lay,
                    buffer.view(),
                    rec,
                    np.arange(frame + 1, frame + 1 + len(rec), dtype=np.int64),
                    starts + rec_hdr,
                    sec * 1_000_000_000 + frac * ns_per_unit,
                    sec.astype(np.float64) + frac.astype(np.float64) * s_per_unit,
                    walks,
                    keep,
                )
                frame += len(rec)
                chunk, count = assemble(capture, [group], tcp, keep=keep)
                tcp += count
                if chunk is not None:
                    yield chunk
            if corrupt:
                capture.cut(f"a corrupt record (captured length {corrupt})", frame)
                break
    finally:
        capture.packets = frame
        capture.tcp_packets = tcp
