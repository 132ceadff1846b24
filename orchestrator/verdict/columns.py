"""A classic pcap's TCP segments as columns (numpy arrays), a chunk of the file at a time.

The reference reader (`pcapfile.TcpCapture`) builds one Python tuple per segment; that alone
costs about 0.8 µs a segment. Here the framing loop only cuts each record's first bytes out of
the chunk (one slice per record), and numpy decodes the link, IPv4 and TCP headers of the whole
chunk at once through a structured view. `vector` then analyses most segments without ever
making a Python object for them.

A chunk whose TCP segments do not all fit the fast layout (IPv6, VLAN tags, IPv4 options, a
short record) comes as (position, segment) pairs instead, decoded by the reference reader's
own decoders, so that both readers agree by construction; so does every chunk of a pcapng file
or of a link type without a fixed IPv4 offset. Non-TCP records go through the reference
decoders too, for the ICMP errors they may carry.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice, repeat
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from orchestrator.errors import CaptureFormatError
from orchestrator.verdict.icmp import icmp_error_in_frame
from orchestrator.verdict.pcapfile import (
    CHUNK,
    MAX_RECORD,
    PCAP_MAGIC_MODIFIED,
    PCAP_MAGIC_NS,
    PCAP_MAGIC_US,
    Link,
    TcpCapture,
    TcpPacket,
    ip4_names,
    part_of,
)

__all__ = ["Chunk", "Columns", "has_columns", "read_chunks"]

I64 = npt.NDArray[np.int64]
_MIX = np.uint64(0x9E3779B97F4A7C15)  # as pcapfile.part_of
_new = tuple.__new__
PAIRS_PER_CHUNK = 1 << 16

# The fast layout after the link header: (name, numpy format, offset in the IPv4 header).
_IP_TCP = (
    ("vihl", "u1", 0),
    ("total", ">u2", 2),
    ("frag", ">u2", 6),
    ("proto", "u1", 9),
    ("src", ">u4", 12),
    ("dst", ">u4", 16),
    ("sport", ">u2", 20),
    ("dport", ">u2", 22),
    ("seq", ">u4", 24),
    ("ack", ">u4", 28),
    ("offflags", ">u2", 32),
    ("win", ">u2", 34),
)
_FAST_NEED = 36  # bytes of IPv4 + TCP that the fast layout reads


@dataclass(slots=True)
class Columns:
    """TCP segments in file order, one array per field of `TcpPacket` (int64), plus each one's
    position among all the capture's TCP segments."""

    pos: I64
    frame: I64
    time: npt.NDArray[np.float64]
    tns: I64
    src: I64  # IPv4 address as a number
    sport: I64
    dst: I64
    dport: I64
    seq: I64
    ack: I64
    flags: I64
    window: I64
    payload_len: I64
    file: str

    def packets(self, rows: npt.NDArray[np.intp]) -> list[TcpPacket]:
        """The `TcpPacket`s of some rows, as the reference reader makes them."""
        names = ip4_names
        return list(
            map(
                _new,
                repeat(TcpPacket),
                zip(
                    self.frame[rows].tolist(),
                    self.time[rows].tolist(),
                    [names[a] for a in self.src[rows].tolist()],
                    self.sport[rows].tolist(),
                    [names[a] for a in self.dst[rows].tolist()],
                    self.dport[rows].tolist(),
                    self.seq[rows].tolist(),
                    self.ack[rows].tolist(),
                    self.flags[rows].tolist(),
                    self.window[rows].tolist(),
                    self.payload_len[rows].tolist(),
                    repeat(self.file),
                    self.tns[rows].tolist(),
                ),
            )
        )


@dataclass(slots=True)
class Chunk:
    """Either columns, or (position, segment) pairs for what the fast layout cannot decode."""

    columns: Columns | None = None
    pairs: list[tuple[int, TcpPacket]] | None = None


def has_columns(capture: TcpCapture) -> bool:
    """Whether the capture is read as columns (else as pairs, by the reference reader)."""
    return capture.format == "pcap" and _pcap_link(capture).hdr_len is not None


def read_chunks(capture: TcpCapture, part: int = 0, parts: int = 1) -> Iterator[Chunk]:
    """The capture's TCP segments (with `parts` > 1, those of part `part`, as
    `TcpCapture.pairs`), a chunk at a time; the capture's counters are set as iterating it
    would set them."""
    if not has_columns(capture):
        it = capture.pairs(part, parts)
        while batch := list(islice(it, PAIRS_PER_CHUNK)):
            yield Chunk(pairs=batch)
        return
    capture.reset()
    try:
        f = open(capture.path, "rb")  # noqa: SIM115 - closed in the finally of the generator
    except OSError as e:
        raise CaptureFormatError(f"{capture.path}: cannot read capture: {e.strerror or e}") from e
    try:
        yield from _pcap(capture, f, part, parts)
    finally:
        f.close()


def _endian_magic(head: bytes) -> tuple[str, int]:
    (magic,) = struct.unpack_from("<I", head, 0)
    if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED):
        return "<", magic
    return ">", struct.unpack_from(">I", head, 0)[0]


def _pcap_link(capture: TcpCapture) -> Link:
    try:
        with open(capture.path, "rb") as f:
            head = f.read(24)
    except OSError as e:
        raise CaptureFormatError(f"{capture.path}: cannot read capture: {e.strerror or e}") from e
    endian, _magic = _endian_magic(head)
    return Link(struct.unpack_from(endian + "I", head, 20)[0] & 0xFFFF)


class _Layout:
    """Where the fields are in each record's slice: the 16- or 24-byte record header, then the
    link header, then plain IPv4 and TCP."""

    def __init__(self, link: Link, endian: str, rec_hdr: int) -> None:
        hdr = link.hdr_len or 0
        u4 = endian + "u4"
        names = ["sec", "frac", "cap", "orig"]
        formats = [u4, u4, u4, u4]
        offsets = [0, 4, 8, 12]
        if link.etype_off is not None:
            names.append("etype")
            formats.append(">u2")
            offsets.append(rec_hdr + link.etype_off)
        for n, fmt, o in _IP_TCP:
            names.append(n)
            formats.append(fmt)
            offsets.append(rec_hdr + hdr + o)
        self.link = link
        self.hdr = hdr
        self.need = hdr + _FAST_NEED
        self.rec_hdr = rec_hdr
        self.width = rec_hdr + self.need
        self.dtype = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": self.width}
        )


def _pcap(capture: TcpCapture, f: BinaryIO, part: int, parts: int) -> Iterator[Chunk]:  # noqa: PLR0915 - the framing loop
    head = f.read(24)
    endian, magic = _endian_magic(head)
    (network,) = struct.unpack_from(endian + "I", head, 20)
    link = Link(network & 0xFFFF)
    capture.linktypes.add(link.linktype)
    rec_hdr = 24 if magic == PCAP_MAGIC_MODIFIED else 16
    lay = _Layout(link, endian, rec_hdr)
    ns_per_unit = 1 if magic == PCAP_MAGIC_NS else 1000
    width = lay.width
    pad = bytes(width)
    unpack_cap = struct.Struct(endian + "I").unpack_from
    read = f.read
    frame = 0
    tcp = 0
    rest = b""
    want = CHUNK
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
            want = CHUNK
            while pos <= last:
                cap = unpack_cap(padded, pos + 8)[0]
                end = pos + rec_hdr + cap
                if end > n:
                    if cap > MAX_RECORD:
                        corrupt = cap
                    want = max(CHUNK, end - n)
                    break
                app(padded[pos : pos + width])
                pos = end
            rest = buf[pos:]
            if slices:
                rec = np.frombuffer(b"".join(slices), lay.dtype)
                chunk, count = _decode(capture, lay, buf, rec, frame, tcp, ns_per_unit, part, parts)
                frame += len(rec)
                tcp += count
                if chunk is not None:
                    yield chunk
            if corrupt:
                capture.cut(f"a corrupt record (captured length {corrupt})", frame)
                break
    finally:
        capture.packets = frame
        capture.tcp_packets = tcp


def _decode(
    capture: TcpCapture,
    lay: _Layout,
    buf: bytes,
    rec: np.ndarray,
    frame0: int,
    tcp0: int,
    ns_per_unit: int,
    part: int,
    parts: int,
) -> tuple[Chunk | None, int]:
    """One chunk's records: its chunk of segments (None if none is kept) and its TCP count."""
    n = len(rec)
    cap = rec["cap"].astype(np.int64)
    orig = np.maximum(rec["orig"].astype(np.int64), cap)
    sec = rec["sec"].astype(np.int64)
    frac = rec["frac"].astype(np.int64)
    tns = sec * 1_000_000_000 + frac * ns_per_unit
    simple = (rec["vihl"] == 0x45) & ((rec["frag"] & 0x1FFF) == 0) & (cap >= lay.need)
    if lay.link.etype_off is not None:
        simple &= rec["etype"] == 0x0800
    proto = rec["proto"]
    total = rec["total"].astype(np.int64)
    total = np.where(total == 0, orig - lay.hdr, total)  # TSO: the frame's length stands for it
    offflags = rec["offflags"].astype(np.int64)
    plen = total - 20 - (offflags >> 12) * 4
    good = simple & (proto == 6) & (plen >= 0) & (offflags >= 0x5000)
    slow = ~simple | (proto == 1)  # ICMP: the reference decoders look for errors about TCP
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(cap[:-1] + lay.rec_hdr, out=starts[1:])
    data = starts + lay.rec_hdr
    rare: list[tuple[int, TcpPacket]] = []
    decode, linktype = lay.link.decode, lay.link.linktype
    s_per_unit = 1e-9 if ns_per_unit == 1 else 1e-6
    for j in np.flatnonzero(slow).tolist():
        d, c, fr, t = int(data[j]), int(cap[j]), frame0 + 1 + j, int(tns[j])
        fields = decode(buf, d, c, int(orig[j]))
        if fields is None:
            capture.add_icmp(icmp_error_in_frame(linktype, buf, d, c), fr, t)
        else:
            secs = int(sec[j]) + int(frac[j]) * s_per_unit
            rare.append((j, _new(TcpPacket, (fr, secs, *fields, capture.name, t))))
    is_tcp = good.copy()
    if rare:
        is_tcp[[j for j, _p in rare]] = True
    rank = np.cumsum(is_tcp)
    count = int(rank[-1]) if n else 0
    keep = good
    if parts > 1:
        x = (rec["src"] ^ rec["dst"]).astype(np.uint64) ^ (
            (rec["sport"] ^ rec["dport"]).astype(np.uint64) << np.uint64(32)
        )
        keep = good & ((((x * _MIX) >> np.uint64(32)) % np.uint64(parts)).astype(np.int64) == part)
        rare = [(j, p) for j, p in rare if part_of(p.src, p.sport, p.dst, p.dport, parts) == part]
    at = np.flatnonzero(keep)
    r = rec[at]
    cols = Columns(
        pos=rank[at] + tcp0,
        frame=at.astype(np.int64) + (frame0 + 1),
        time=sec[at].astype(np.float64) + frac[at].astype(np.float64) * s_per_unit,
        tns=tns[at],
        src=r["src"].astype(np.int64),
        sport=r["sport"].astype(np.int64),
        dst=r["dst"].astype(np.int64),
        dport=r["dport"].astype(np.int64),
        seq=r["seq"].astype(np.int64),
        ack=r["ack"].astype(np.int64),
        flags=offflags[at] & 0x0FFF,
        window=r["win"].astype(np.int64),
        payload_len=plen[at],
        file=capture.name,
    )
    if rare:  # a few odd segments: this chunk goes the reference way, in file order
        rows = list(
            zip(
                at.tolist(),
                zip(cols.pos.tolist(), cols.packets(np.arange(len(at))), strict=True),
                strict=True,
            )
        )
        rows += [(j, (int(rank[j]) + tcp0, p)) for j, p in rare]
        rows.sort(key=lambda row: row[0])
        return Chunk(pairs=[pair for _j, pair in rows]), count
    if not len(at):
        return None, count
    return Chunk(columns=cols), count
