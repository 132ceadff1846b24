"""A classic pcap's TCP segments as columns (numpy arrays), a chunk of the file at a time.

The reference reader (`reader.TcpCapture`) builds one Python tuple per segment; that alone
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from itertools import islice, repeat
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from orchestrator.pcap.icmp import Found, icmp_error_in_frame
from orchestrator.pcap.links import Link, ip4_names
from orchestrator.pcap.reader import (
    CHUNK,
    MAX_RECORD,
    PCAP_MAGIC_MODIFIED,
    PCAP_MAGIC_NS,
    PCAPNG_SHB,
    Iface,
    TcpCapture,
    TcpPacket,
    parse_idb,
    pcap_header,
    seconds,
)

__all__ = ["Chunk", "Columns", "has_columns", "read_chunks"]

I64 = npt.NDArray[np.int64]
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
        yield from (_pcap if capture.format == "pcap" else _pcapng)(capture, f)
    finally:
        f.close()


class _Layout:
    """Where the fields are in each record's slice: the record header (`head`: name, format,
    offset), then the link header, then plain IPv4 and TCP."""

    def __init__(
        self, link: Link, head: list[tuple[str, str, int]], head_len: int, itemsize: int = 0
    ) -> None:
        hdr = link.hdr_len or 0
        names = [n for n, _f, _o in head]
        formats = [f for _n, f, _o in head]
        offsets = [o for _n, _f, o in head]
        if link.etype_off is not None:
            names.append("etype")
            formats.append(">u2")
            offsets.append(head_len + link.etype_off)
        for n, fmt, o in _IP_TCP:
            names.append(n)
            formats.append(fmt)
            offsets.append(head_len + hdr + o)
        self.link = link
        self.hdr = hdr
        self.need = hdr + _FAST_NEED
        self.head_len = head_len
        self.width = head_len + self.need
        self.dtype = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize or self.width}
        )


@dataclass(slots=True)
class _Group:
    """Records of one layout, decoded: the TCP segments the fast layout read (as columns,
    positions not yet set), the others that are TCP (as packets), and ICMP errors by frame."""

    columns: Columns
    rare: list[TcpPacket]
    icmp: list[tuple[int, int, Found]]  # frame, ns, the error


def _pcap(capture: TcpCapture, f: BinaryIO) -> Iterator[Chunk]:  # noqa: PLR0915 - the framing loop
    endian, magic, linktype = pcap_header(f.read(24))
    link = Link(linktype)
    capture.linktypes.add(link.linktype)
    rec_hdr = 24 if magic == PCAP_MAGIC_MODIFIED else 16
    u4 = endian + "u4"
    lay = _Layout(link, [("sec", u4, 0), ("frac", u4, 4), ("cap", u4, 8), ("orig", u4, 12)], rec_hdr)
    ns_per_unit = 1 if magic == PCAP_MAGIC_NS else 1000
    s_per_unit = 1e-9 if ns_per_unit == 1 else 1e-6
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
                starts = np.zeros(len(rec), dtype=np.int64)
                np.cumsum(rec["cap"][:-1].astype(np.int64) + rec_hdr, out=starts[1:])
                sec = rec["sec"].astype(np.int64)
                frac = rec["frac"].astype(np.int64)
                group = _decode(
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
                chunk, count = _assemble(capture, [group], tcp)
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
    frames: I64,
    data: I64,
    tns: I64,
    times: npt.NDArray[np.float64],
) -> _Group:
    """Records of one layout: `frames` their frame numbers, `data` where each packet starts in
    `buf`, `tns` and `times` their capture times (ns, and seconds as the reference reader
    computes them)."""
    cap = rec["cap"].astype(np.int64)
    orig = np.maximum(rec["orig"].astype(np.int64), cap)
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
    rare: list[TcpPacket] = []
    icmp: list[tuple[int, int, Found]] = []
    decode, linktype = lay.link.decode, lay.link.linktype
    for j in np.flatnonzero(slow).tolist():
        d, c, fr, t = int(data[j]), int(cap[j]), int(frames[j]), int(tns[j])
        fields = decode(buf, d, c, int(orig[j]))
        if fields is None:
            found = icmp_error_in_frame(linktype, buf, d, c)
            if found is not None:
                icmp.append((fr, t, found))
        else:
            rare.append(_new(TcpPacket, (fr, float(times[j]), *fields, capture.name, t)))
    at = np.flatnonzero(good)
    r = rec[at]
    cols = Columns(
        pos=np.zeros(len(at), dtype=np.int64),
        frame=frames[at],
        time=times[at],
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
    return _Group(cols, rare, icmp)


def _assemble(
    capture: TcpCapture,
    groups: list[_Group],
    tcp0: int,
    rare: Sequence[TcpPacket] = (),
    icmp: Sequence[tuple[int, int, Found]] = (),
) -> tuple[Chunk | None, int]:
    """A chunk from its groups (and the rare packets and ICMP errors of other blocks): TCP
    segments in file order with their positions; ICMP errors recorded in file order. Returns
    the chunk (None if it has no segment) and its count of TCP segments."""
    for frame, ns, found in sorted([*icmp, *(e for g in groups for e in g.icmp)]):
        capture.add_icmp(found, frame, ns)
    rare = sorted([*rare, *(p for g in groups for p in g.rare)], key=lambda p: p.frame)
    parts_cols = [g.columns for g in groups if len(g.columns.frame)]
    cols = parts_cols[0] if len(parts_cols) == 1 else _concat(parts_cols, capture.name)
    count = len(cols.frame) + len(rare)
    if rare:  # a few odd segments: this chunk goes the reference way, in file order
        fast = cols.packets(np.arange(len(cols.frame)))
        merged = sorted([*fast, *rare], key=lambda p: p.frame)
        return Chunk(pairs=list(enumerate(merged, tcp0 + 1))), count
    cols.pos = np.arange(tcp0 + 1, tcp0 + 1 + count, dtype=np.int64)
    return (Chunk(columns=cols) if count else None), count


_EMPTY = {
    f.name: np.zeros(0, dtype=np.float64 if f.name == "time" else np.int64)
    for f in fields(Columns)
    if f.name != "file"
}


def _concat(pieces: list[Columns], file: str) -> Columns:
    """Several groups' columns as one, in frame order."""
    if not pieces:
        return _no_columns(file)
    merged = {
        f.name: np.concatenate([getattr(c, f.name) for c in pieces])
        for f in fields(Columns)
        if f.name != "file"
    }
    order = np.argsort(merged["frame"], kind="stable")
    return Columns(**{k: v[order] for k, v in merged.items()}, file=file)


# ---------------------------------------------------------------------------
# pcapng

# An EPB's slice: from its length (offset 4) through its head, the longest link header (SLL2),
# IPv4 and TCP.
_NG_WIDTH = 4 + 20 + 20 + _FAST_NEED
_NG_PAD = bytes(_NG_WIDTH + 8)
_NG_HEAD = (
    ("blen", "u4", 0),
    ("iface", "u4", 4),
    ("hi", "u4", 8),
    ("lo", "u4", 12),
    ("cap", "u4", 16),
    ("orig", "u4", 20),
)


class _Section:
    """A pcapng section: its byte order, and its interfaces with their fast layouts (if any)."""

    def __init__(self, endian: str) -> None:
        self.endian = endian
        self.u32 = struct.Struct(endian + "I").unpack_from
        self.u32x2 = struct.Struct(endian + "II").unpack_from
        self.epb = struct.Struct(endian + "IIIII").unpack_from
        self.ifaces: list[Iface] = []
        self.layouts: list[_Layout | None] = []
        self.head = np.dtype(
            {
                "names": [n for n, _f, _o in _NG_HEAD],
                "formats": [endian + f for _n, f, _o in _NG_HEAD],
                "offsets": [o for _n, _f, o in _NG_HEAD],
                "itemsize": _NG_WIDTH,
            }
        )

    def add(self, iface: Iface) -> None:
        self.ifaces.append(iface)
        e = self.endian
        head = [(n, e + f, o) for n, f, o in _NG_HEAD]
        self.layouts.append(_Layout(iface, head, 24, _NG_WIDTH) if iface.hdr_len is not None else None)

    def tns(self, buf: bytes, block: int) -> int | None:
        """An Enhanced Packet Block's time as the reference reader computes it (None: invalid)."""
        iface, hi, lo, cap, _orig = self.epb(buf, block + 8)
        if iface >= len(self.ifaces) or cap > self.u32(buf, block + 4)[0] - 32:
            return None
        i = self.ifaces[iface]
        ns: int = ((hi << 32) | lo) * i.num // i.den + i.offset_ns
        return ns


def _pcapng(capture: TcpCapture, f: BinaryIO) -> Iterator[Chunk]:  # noqa: PLR0915 - the framing loop
    """Enhanced Packet Blocks are sliced and decoded a chunk at a time, interface by interface;
    Simple and obsolete Packet Blocks (rare) are decoded on the spot by the reference decoders."""
    read = f.read
    sec = _Section("<")
    frame = 0
    tcp = 0
    last_tns = 0
    rest = b""
    want = CHUNK
    stop = ""
    try:
        while not stop:
            more = read(want)
            if not more:
                if rest:
                    what = "a block header" if len(rest) < 12 else "a block"
                    capture.cut(f"the file ends inside {what}", frame)
                break
            buf = rest + more if rest else more
            n = len(buf)
            padded = buf + _NG_PAD
            pos = 0
            want = CHUNK
            run = _Run()  # EPBs since the last other packet block or section
            slices, blocks, frames = run.slices, run.blocks, run.frames
            groups: list[_Group] = []
            rare: list[TcpPacket] = []
            icmp: list[tuple[int, int, Found]] = []
            u32x2 = sec.u32x2
            while n - pos >= 12:
                btype, blen = u32x2(buf, pos)
                if btype == 6 and 28 <= blen <= MAX_RECORD and not blen % 4:  # Enhanced Packet Block
                    end = pos + blen
                    if end > n:
                        want = max(CHUNK, end - n)
                        break
                    frame += 1
                    slices.append(padded[pos + 4 : pos + 4 + _NG_WIDTH])
                    blocks.append(pos)
                    frames.append(frame)
                    pos = end
                    continue
                if btype == PCAPNG_SHB:
                    bom = buf[pos + 8 : pos + 12]
                    if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                        stop = "a corrupt section header"
                        break
                    (blen,) = struct.unpack_from(
                        ("<" if bom == b"\x4d\x3c\x2b\x1a" else ">") + "I", buf, pos + 4
                    )
                if blen < 12 or blen % 4 or blen > MAX_RECORD:
                    stop = f"a corrupt block (length {blen})"
                    break
                end = pos + blen
                if end > n:
                    want = max(CHUNK, end - n)
                    break
                if btype == 6:  # an EPB too short for its head: as the reference reader, not a packet
                    frame += 1
                elif btype == PCAPNG_SHB:
                    groups += _epbs(capture, sec, buf, run)
                    last_tns = run.last_tns(sec, buf, last_tns)
                    run = _Run()
                    slices, blocks, frames = run.slices, run.blocks, run.frames
                    sec = _Section("<" if buf[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">")
                    u32x2 = sec.u32x2
                elif btype == 1:
                    sec.add(parse_idb(capture, buf, pos, blen, sec.endian))
                elif btype in (2, 3):  # obsolete Packet Block, Simple Packet Block: rare
                    frame += 1
                    groups += _epbs(capture, sec, buf, run)
                    last_tns = run.last_tns(sec, buf, last_tns)
                    run = _Run()
                    slices, blocks, frames = run.slices, run.blocks, run.frames
                    last_tns = _rare_block(capture, sec, buf, pos, blen, btype, frame, last_tns, rare, icmp)
                pos = end
            groups += _epbs(capture, sec, buf, run)
            last_tns = run.last_tns(sec, buf, last_tns)
            rest = buf[pos:]
            chunk, count = _assemble(capture, groups, tcp, rare, icmp)
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
    """Consecutive Enhanced Packet Blocks of one section: their slices, offsets and frames."""

    slices: list[bytes] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)

    def last_tns(self, sec: _Section, buf: bytes, before: int) -> int:
        """The time of the run's last valid EPB (what a Simple Packet Block after it takes)."""
        for block in reversed(self.blocks):
            tns = sec.tns(buf, block)
            if tns is not None:
                return tns
        return before


def _no_columns(file: str) -> Columns:
    return Columns(**_EMPTY, file=file)  # type: ignore[arg-type]


def _epbs(capture: TcpCapture, sec: _Section, buf: bytes, run: _Run) -> list[_Group]:
    """Decode a run of Enhanced Packet Blocks, interface by interface."""
    if not run.slices:
        return []
    joined = b"".join(run.slices)
    head = np.frombuffer(joined, sec.head)
    ids = head["iface"].astype(np.int64)
    valid = (ids < len(sec.ifaces)) & (head["cap"].astype(np.int64) <= head["blen"].astype(np.int64) - 32)
    offsets = np.array(run.blocks, dtype=np.int64)
    frames = np.array(run.frames, dtype=np.int64)
    groups = []
    for k in np.unique(ids[valid]).tolist():
        m = valid & (ids == k)
        face, lay = sec.ifaces[k], sec.layouts[k]
        if lay is None:  # no fixed IPv4 offset: the reference decoders, one by one
            groups.append(_slow_group(capture, face, buf, offsets[m], frames[m], sec))
            continue
        rec = np.frombuffer(joined, lay.dtype)[m]
        units = (rec["hi"].astype(np.uint64) << np.uint64(32)) | rec["lo"].astype(np.uint64)
        if int(units.max()) * face.num < 1 << 62:
            tns = units.astype(np.int64) * face.num // face.den + face.offset_ns
        else:  # would overflow 64 bits: Python's integers, as the reference reader
            tns = np.array(
                [u * face.num // face.den + face.offset_ns for u in units.tolist()], dtype=np.int64
            )
        times = (tns // 1_000_000_000).astype(np.float64) + (tns % 1_000_000_000).astype(np.float64) / 1e9
        groups.append(_decode(capture, lay, buf, rec, frames[m], offsets[m] + 28, tns, times))  # as `seconds`
    return groups


def _slow_group(
    capture: TcpCapture, iface: Iface, buf: bytes, offsets: I64, frames: I64, sec: _Section
) -> _Group:
    rare: list[TcpPacket] = []
    icmp: list[tuple[int, int, Found]] = []
    for block, fr in zip(offsets.tolist(), frames.tolist(), strict=True):
        _iface, _hi, _lo, cap, orig = sec.epb(buf, block + 8)
        tns = sec.tns(buf, block)
        assert tns is not None  # checked valid
        _decode_one(capture, iface, buf, block + 28, cap, orig, fr, tns, rare, icmp)
    return _Group(_no_columns(capture.name), rare, icmp)


def _rare_block(
    capture: TcpCapture,
    sec: _Section,
    buf: bytes,
    block: int,
    blen: int,
    btype: int,
    frame: int,
    last_tns: int,
    rare: list[TcpPacket],
    icmp: list[tuple[int, int, Found]],
) -> int:
    """A Simple (3) or obsolete Packet Block (2), as the reference reader reads it. Returns the
    time of the latest packet (Simple Packet Blocks have none of their own)."""
    e = sec.endian
    if btype == 2:
        iface_id, _drops, hi, lo, cap, orig = struct.unpack_from(e + "HHIIII", buf, block + 8)
        if iface_id >= len(sec.ifaces) or cap > blen - 32:
            return last_tns
        iface = sec.ifaces[iface_id]
        data = block + 28
        tns = ((hi << 32) | lo) * iface.num // iface.den + iface.offset_ns
        last_tns = tns
    else:
        (orig,) = struct.unpack_from(e + "I", buf, block + 8)
        if not sec.ifaces:
            return last_tns
        iface = sec.ifaces[0]
        cap = min(orig, blen - 16, iface.snaplen or orig)
        data = block + 12
        tns = last_tns
    _decode_one(capture, iface, buf, data, cap, orig, frame, tns, rare, icmp)
    return last_tns


def _decode_one(
    capture: TcpCapture,
    iface: Iface,
    buf: bytes,
    data: int,
    cap: int,
    orig: int,
    frame: int,
    tns: int,
    rare: list[TcpPacket],
    icmp: list[tuple[int, int, Found]],
) -> None:
    fields_ = iface.decode(buf, data, cap, orig if orig > cap else cap)
    if fields_ is None:
        found = icmp_error_in_frame(iface.linktype, buf, data, cap)
        if found is not None:
            icmp.append((frame, tns, found))
    else:
        rare.append(_new(TcpPacket, (frame, seconds(tns), *fields_, capture.name, tns)))
