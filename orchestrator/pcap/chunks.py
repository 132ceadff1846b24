"""The column reader: a capture's TCP segments, a chunk of the file at a time, as columns
(`columns`) where it can, else as (position, segment) pairs; and its framing of classic pcap.

The framing loop is inlined for speed and takes the format (magic, record header, timestamp
unit) from `pcap`; pcapng has its own loop, in `ngchunks`. A capture whose link type has no
fixed IPv4 offset is read by the reference reader, in batches of pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import BinaryIO

import numpy as np

from orchestrator.pcap import columns, pcap
from orchestrator.pcap.columns import Chunk, Slice, assemble, decode
from orchestrator.pcap.links import Link
from orchestrator.pcap.ngchunks import pcapng_chunks
from orchestrator.pcap.reader import MAX_RECORD, TcpCapture

__all__ = ["has_columns", "read_chunks"]

PAIRS_PER_CHUNK = 1 << 16


def has_columns(capture: TcpCapture) -> bool:
    """Whether the capture is read as columns (else as pairs, by the reference reader): pcapng
    always (each interface's blocks as columns if its link type allows), classic pcap if its
    link type has a fixed IPv4 offset."""
    if capture.format == "pcapng":
        return True
    return capture.pcap_linktype is not None and Link(capture.pcap_linktype).hdr_len is not None


def read_chunks(capture: TcpCapture) -> Iterator[Chunk]:
    """The capture's TCP segments, a chunk at a time; the capture's counters are set as iterating it
    would set them."""
    if not has_columns(capture):
        it = capture.pairs()
        while batch := list(islice(it, PAIRS_PER_CHUNK)):
            yield Chunk(pairs=batch)
        return
    capture.reset()
    f = capture.open()
    try:
        yield from (_pcap if capture.format == "pcap" else pcapng_chunks)(capture, f)
    finally:
        f.close()


def _pcap(capture: TcpCapture, f: BinaryIO) -> Iterator[Chunk]:  # noqa: PLR0915 - the framing loop
    header = pcap.parse_header(f.read(pcap.FILE_HEADER.size))
    link = Link(header.linktype)
    capture.linktypes.add(link.linktype)
    kind = header.kind
    rec_hdr = kind.record.size
    lay = Slice(link, pcap.RECORD_HEADER.numpy_fields(header.endian), rec_hdr)
    ns_per_unit, s_per_unit = kind.ns_per_unit, kind.s_per_unit
    width = lay.width
    pad = bytes(width)
    cap_at = pcap.RECORD_HEADER.offsets["cap"]
    unpack_cap = pcap.RECORD_HEADER.field_struct("cap", header.endian).unpack_from
    chunk_size = columns.CHUNK
    read = f.read
    frame = 0
    tcp = 0
    rest = b""
    want = chunk_size
    try:
        while True:
            more = read(want)
            if not more:
                if rest:
                    what = "a record header" if len(rest) < rec_hdr else "a packet"
                    capture.cut(f"the file ends inside {what}", frame)
                break
            buf = rest + more if rest else more
            n = len(buf)
            padded = buf + pad  # every slice is `width` long, even a short last record's
            slices: list[bytes] = []
            app = slices.append
            pos = 0
            last = n - rec_hdr
            corrupt = 0
            want = chunk_size
            while pos <= last:
                cap = unpack_cap(padded, pos + cap_at)[0]
                end = pos + rec_hdr + cap
                if end > n:
                    if cap > MAX_RECORD:
                        corrupt = cap
                    want = max(chunk_size, end - n)
                    break
                app(padded[pos : pos + width])
                pos = end
            rest = buf[pos:]
            if slices:
                rec = np.frombuffer(b"".join(slices), lay.dtype)
                starts = np.zeros(len(rec), dtype=np.int64)
                np.cumsum(rec["cap"][:-1].astype(np.int64) + rec_hdr, out=starts[1:])
                sec = rec["sec"].astype(np.int64)
                frac = rec["frac"].astype(np.int64)
                group = decode(
                    capture,
                    lay,
                    buf,
                    rec,
                    np.arange(frame + 1, frame + 1 + len(rec), dtype=np.int64),
                    starts + rec_hdr,
                    sec * 1_000_000_000 + frac * ns_per_unit,
                    sec.astype(np.float64) + frac.astype(np.float64) * s_per_unit,
                )
                frame += len(rec)
                chunk, count = assemble(capture, [group], tcp)
                tcp += count
                if chunk is not None:
                    yield chunk
            if corrupt:
                capture.cut(f"a corrupt record (captured length {corrupt})", frame)
                break
    finally:
        capture.packets = frame
        capture.tcp_packets = tcp
