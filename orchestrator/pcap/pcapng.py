"""pcapng: its block types, block framing, the bodies of the blocks we read (Section Header,
Interface Description, Enhanced, Simple and the obsolete Packet Blocks), their options (comments,
``if_tsresol``, ``if_tsoffset``), and a writer that makes blocks, copies others, and adds
comments to packets.

What the format is lives here, once, with its reference framing loop (`read_segments`, which
`reader.TcpCapture` runs). The column reader (`ngchunks`) keeps its own loop inline, for speed,
but takes the block types, the body layouts, the byte-order marks and the interface parsing from
this module; `annotate` and the live packet count (`report.progress`) use its functions. Over
400 lines for that reason: the format's tables, its parsers, its writer and its reading loop,
one format's whole.

A file is a sequence of blocks: type, total length, body, the total length again (lengths are
multiples of 4, bodies padded with zeros). A Section Header Block starts each section and says,
by its byte-order mark, the byte order of the blocks up to the next one; each section numbers
its own interfaces, in the order of their Interface Description Blocks. A packet's timestamp is
a 64-bit count of its interface's unit (``if_tsresol``, 10^-6 s by default), from the epoch
shifted by ``if_tsoffset`` seconds: ns = units * num // den + offset_ns (`Interface.time_ns`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

from orchestrator.errors import CaptureFormatError
from orchestrator.pcap.icmp import icmp4_error, icmp_error_in_frame
from orchestrator.pcap.layout import Layout
from orchestrator.pcap.links import Link, header_cut, ip4_names
from orchestrator.pcap.segment import CHUNK, MAX_RECORD, Sink, TcpPacket, new_packet, seconds

__all__ = [
    "BLOCK_HEADER",
    "BOMS",
    "EPB",
    "EPB_BODY",
    "IDB",
    "MIN_BLOCK",
    "PACKET_BLOCKS",
    "PB",
    "PB_BODY",
    "SHB",
    "SPB",
    "SPB_BODY",
    "Block",
    "Iface",
    "Interface",
    "Writer",
    "count_packets",
    "parse_idb",
    "read_blocks",
    "read_segments",
    "section_order",
    "units",
]

# Block types
SHB = 0x0A0D0D0A  # Section Header Block: the same bytes in either byte order
IDB = 1  # Interface Description Block
PB = 2  # Packet Block, obsolete
SPB = 3  # Simple Packet Block: interface 0, no timestamp
EPB = 6  # Enhanced Packet Block
PACKET_BLOCKS = (EPB, PB, SPB)  # each is a frame

BOM = 0x1A2B3C4D
BOMS = {struct.pack("<I", BOM): "<", struct.pack(">I", BOM): ">"}  # the mark's bytes -> byte order

BLOCK_HEADER = Layout(("type", "I"), ("length", "I"))
BLOCK_TRAILER = Layout(("length", "I"))
MIN_BLOCK = BLOCK_HEADER.size + BLOCK_TRAILER.size
SHB_BODY = Layout(("bom", "I"), ("major", "H"), ("minor", "H"), ("section_length", "q"))
IDB_BODY = Layout(("linktype", "H"), ("reserved", "H"), ("snaplen", "I"))
EPB_BODY = Layout(("iface", "I"), ("hi", "I"), ("lo", "I"), ("cap", "I"), ("orig", "I"))
PB_BODY = Layout(("iface", "H"), ("drops", "H"), ("hi", "I"), ("lo", "I"), ("cap", "I"), ("orig", "I"))
SPB_BODY = Layout(("orig", "I"))
# Where each packet block's packet data starts, and (EPB, PB) the least length of a block whose
# captured length is `cap`: header, body, the data, trailer.
EPB_DATA = BLOCK_HEADER.size + EPB_BODY.size
PB_DATA = BLOCK_HEADER.size + PB_BODY.size
SPB_DATA = BLOCK_HEADER.size + SPB_BODY.size
EPB_OVERHEAD = EPB_DATA + BLOCK_TRAILER.size

# Options: code, length, the value padded to 4 bytes; the list ends with opt_endofopt.
OPTION = Layout(("code", "H"), ("length", "H"))
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME = 2
IF_TSRESOL = 9
IF_TSOFFSET = 14

_TSOFFSET = Layout(("seconds", "q"))


class Interface(NamedTuple):
    """An interface of a section: its link type and its timestamps' unit and offset."""

    linktype: int
    snaplen: int
    num: int = 1000  # ns = units * num // den + offset_ns; the default unit is 10^-6 s
    den: int = 1
    offset_ns: int = 0

    def time_ns(self, hi: int, lo: int) -> int:
        """A packet's time in epoch nanoseconds, from its timestamp's two 32-bit halves."""
        return ((hi << 32) | lo) * self.num // self.den + self.offset_ns


class Block(NamedTuple):
    endian: str  # its section's byte order
    type: int
    data: bytes  # the whole block, header and trailer included


def section_order(buf: bytes, pos: int = 0) -> str | None:
    """The byte order of the section whose header block starts at `pos` (None: no valid mark)."""
    return BOMS.get(buf[pos + 8 : pos + 12])


def units(tsresol: int) -> tuple[int, int]:
    """An ``if_tsresol`` value as (num, den): ns = units * num // den. The high bit set: 2^-n
    seconds, else 10^-n."""
    e = tsresol & 0x7F
    if tsresol & 0x80:
        return 1_000_000_000, 1 << e
    return (10 ** (9 - e), 1) if e <= 9 else (1, 10 ** (e - 9))


def options(buf: bytes, start: int, stop: int, endian: str) -> Iterator[tuple[int, int, int]]:
    """(code, where its value starts, its length) of each option from `start` up to `stop` or
    opt_endofopt."""
    unpack = OPTION.struct(endian).unpack_from
    p = start
    while p + OPTION.size <= stop:
        code, olen = unpack(buf, p)
        if code == OPT_ENDOFOPT:
            return
        yield code, p + OPTION.size, olen
        p += OPTION.size + ((olen + 3) & ~3)


def parse_idb(buf: bytes, pos: int, blen: int, endian: str) -> Interface:
    """The Interface Description Block at `pos` (`blen` bytes long)."""
    linktype, _reserved, snaplen = IDB_BODY.struct(endian).unpack_from(buf, pos + BLOCK_HEADER.size)
    num, den = 1000, 1
    offset_ns = 0
    body_end = pos + BLOCK_HEADER.size + IDB_BODY.size
    for code, v, olen in options(buf, body_end, pos + blen - BLOCK_TRAILER.size, endian):
        if code == IF_TSRESOL and olen >= 1:
            num, den = units(buf[v])
        elif code == IF_TSOFFSET and olen >= _TSOFFSET.size:
            offset_ns = _TSOFFSET.struct(endian).unpack_from(buf, v)[0] * 1_000_000_000
    return Interface(linktype, snaplen, num, den, offset_ns)


def read_blocks(f: BinaryIO) -> Iterator[Block]:
    """Each block in turn, whole; stops at a block cut short. Raises `CaptureFormatError` at a
    corrupt block (a length below 12, a section header without a byte-order mark)."""
    endian = "<"
    head_len = BLOCK_HEADER.size
    while True:
        head = f.read(head_len)
        if len(head) < head_len:
            return
        btype = BLOCK_HEADER.field_struct("type", endian).unpack_from(head)[0]
        if btype == SHB:
            bom = f.read(4)
            if len(bom) < 4:
                return
            order = BOMS.get(bom)
            if order is None:
                raise CaptureFormatError(f"{getattr(f, 'name', '?')}: corrupt pcapng section header")
            endian = order
            rest = bom
        else:
            rest = b""
        length = BLOCK_HEADER.struct(endian).unpack_from(head)[1]
        if length < MIN_BLOCK:
            raise CaptureFormatError(f"{getattr(f, 'name', '?')}: corrupt pcapng block (length {length})")
        rest += f.read(length - head_len - len(rest))
        if len(rest) < length - head_len:
            return
        yield Block(endian, btype, head + rest)


def count_packets(buf: bytes, pos: int, endian: str) -> tuple[int, int]:
    """The packet blocks among the whole blocks in `buf` from `pos`: how many, and where the
    first block not whole (or corrupt) starts."""
    unpack = BLOCK_HEADER.struct(endian).unpack_from
    n = len(buf)
    count = 0
    while n - pos >= BLOCK_HEADER.size:
        btype, blen = unpack(buf, pos)
        if blen < MIN_BLOCK or n - pos < blen:
            break
        count += btype in PACKET_BLOCKS
        pos += blen
    return count, pos


# -- writing ------------------------------------------------------------------------------


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _option(code: int, value: bytes, endian: str) -> bytes:
    return OPTION.struct(endian).pack(code, len(value)) + _pad(value)


def _options(opts: Iterable[tuple[int, bytes]], endian: str = "<") -> bytes:
    """Options, then opt_endofopt."""
    return b"".join(_option(c, v, endian) for c, v in opts) + OPTION.struct(endian).pack(OPT_ENDOFOPT, 0)


def _block(btype: int, body: bytes, endian: str = "<") -> bytes:
    length = BLOCK_HEADER.size + len(body) + BLOCK_TRAILER.size
    return BLOCK_HEADER.struct(endian).pack(btype, length) + body + BLOCK_TRAILER.struct(endian).pack(length)


class Writer:
    """A pcapng file, written block by block: the blocks it makes are little-endian, the blocks
    it copies keep their own byte order."""

    def __init__(self, f: BinaryIO) -> None:
        self._write = f.write

    def section(self, opts: Iterable[tuple[int, bytes]] = ()) -> None:
        """A Section Header Block, version 1.0, its length unknown."""
        self._write(_block(SHB, SHB_BODY.struct("<").pack(BOM, 1, 0, -1) + _options(opts)))

    def interface(self, linktype: int, snaplen: int, opts: Iterable[tuple[int, bytes]] = ()) -> None:
        """An Interface Description Block (interfaces are numbered in order within the section)."""
        self._write(_block(IDB, IDB_BODY.struct("<").pack(linktype, 0, snaplen) + _options(opts)))

    def packet(
        self, units: int, data: bytes, orig: int, comments: Iterable[str] = (), iface: int = 0
    ) -> None:
        """An Enhanced Packet Block: `units` of its interface's if_tsresol since the epoch, `data`
        as captured, `orig` bytes on the wire, and packet comments if any."""
        body = EPB_BODY.struct("<").pack(iface, units >> 32, units & 0xFFFFFFFF, len(data), orig) + _pad(data)
        notes = [(OPT_COMMENT, c.encode()) for c in comments]
        self._write(_block(EPB, body + _options(notes) if notes else body))

    def copy(self, block: Block, comments: Iterable[str] = ()) -> None:
        """A block as it is; an Enhanced Packet Block given comments gets them after its own
        options, in its own byte order."""
        notes = list(comments)
        if not notes or block.type != EPB:
            self._write(block.data)
            return
        data, e = block.data, block.endian
        cap = EPB_BODY.struct(e).unpack_from(data, BLOCK_HEADER.size)[3]
        data_end = EPB_DATA + ((cap + 3) & ~3)
        kept_end = data_end
        for _code, v, olen in options(data, data_end, len(data) - BLOCK_TRAILER.size, e):
            kept_end = v + ((olen + 3) & ~3)
        kept = data[data_end : min(kept_end, len(data) - BLOCK_TRAILER.size)]
        added = _options(((OPT_COMMENT, t.encode()) for t in notes), e)
        self._write(_block(EPB, data[BLOCK_HEADER.size : data_end] + kept + added, e))


class Iface(Link):
    """A pcapng interface, as the loops use it: its link's decoders, its timestamps' unit and
    offset (`Interface`), flattened for speed."""

    __slots__ = ("den", "interface", "num", "offset_ns", "snaplen")

    def __init__(self, interface: Interface) -> None:
        super().__init__(interface.linktype)
        self.interface = interface
        self.num = interface.num
        self.den = interface.den
        self.offset_ns = interface.offset_ns
        self.snaplen = interface.snaplen


def read_segments(f: BinaryIO, sink: Sink) -> Iterator[tuple[int, TcpPacket]]:  # noqa: PLR0915 - the hot loop, inlined on purpose
    """The TCP segments of a pcapng file, as (position, segment) pairs: the reference framing
    loop (`reader.TcpCapture` calls it). What it reads goes to `sink`: the interfaces' link
    types, the ICMP errors, where the file is cut short, the counts."""
    read = f.read
    buf = read(CHUNK)
    n = len(buf)
    pos = 0
    frame = 0
    skipped = 0  # frames that are not TCP (counting these is cheaper than counting TCP)
    shb, idb, epb_type, pb_type, spb_type = SHB, IDB, EPB, PB, SPB
    timed = (epb_type, pb_type)  # packet blocks with a timestamp
    min_block, epb_overhead = MIN_BLOCK, EPB_OVERHEAD
    epb_data, pb_data, spb_data = EPB_DATA, PB_DATA, SPB_DATA
    spb_room = spb_data + BLOCK_TRAILER.size  # a Simple Packet Block's bytes around its data
    body = BLOCK_HEADER.size
    endian = "<"
    u32 = BLOCK_HEADER.field_struct("type", endian).unpack_from
    epb = EPB_BODY.struct(endian).unpack_from
    pb = PB_BODY.struct(endian).unpack_from
    name = sink.name
    new = new_packet
    cls = TcpPacket
    ip4 = ip4_names
    ifaces: list[Iface] = []  # of the current section
    last_tns = 0
    try:
        while True:
            if n - pos < min_block:  # a block header and, for a section, its mark
                rest, buf = buf[pos:], b""  # let the old chunk go before reading the next
                more = read(CHUNK)
                if not more:
                    if rest:
                        sink.cut("the file ends inside a block header", frame)
                    break
                buf = rest + more
                n = len(buf)
                pos = 0
                continue
            (btype,) = u32(buf, pos)
            if btype == shb:
                order = section_order(buf, pos)
                if order is None:
                    sink.cut("a corrupt section header", frame)
                    break
                endian = order
                u32 = BLOCK_HEADER.field_struct("type", endian).unpack_from
                epb = EPB_BODY.struct(endian).unpack_from
                pb = PB_BODY.struct(endian).unpack_from
                ifaces = []
            (blen,) = u32(buf, pos + 4)
            if blen < min_block or blen % 4 or blen > MAX_RECORD:
                sink.cut(f"a corrupt block (length {blen})", frame)
                break
            end = pos + blen
            if end > n:
                rest, buf = buf[pos:], b""
                more = read(max(CHUNK, end - n))
                if not more:
                    sink.cut("the file ends inside a block", frame)
                    break
                buf = rest + more
                n = len(buf)
                pos = 0
                continue
            block = pos
            pos = end
            if btype in timed:
                if btype == epb_type:
                    iface, hi, lo, cap, orig = epb(buf, block + body)
                    data = block + epb_data
                else:  # the obsolete Packet Block: a 16-bit interface id, then drops
                    iface, _drops, hi, lo, cap, orig = pb(buf, block + body)
                    data = block + pb_data
                frame += 1
                if iface >= len(ifaces) or cap > blen - epb_overhead:
                    skipped += 1
                    continue
                ifc = ifaces[iface]
                tns = ((hi << 32) | lo) * ifc.num // ifc.den + ifc.offset_ns  # Interface.time_ns
                last_tns = tns
            elif btype == spb_type:  # interface 0, no timestamp
                (orig,) = u32(buf, block + body)
                frame += 1
                if not ifaces:
                    skipped += 1
                    continue
                ifc = ifaces[0]
                cap = min(orig, blen - spb_room, ifc.snaplen or orig)
                data = block + spb_data
                tns = last_tns
            else:
                if btype == idb:
                    face = Iface(parse_idb(buf, block, blen, endian))
                    sink.linktypes.add(face.linktype)
                    ifaces.append(face)
                continue
            if cap >= ifc.need:
                etype, vihl, total, frag, proto, src, dst, sport, dport, seq, ack, offflags, win = ifc.fast(
                    buf, data
                )
                if etype == 0x0800 and vihl == 0x45 and not frag & 0x1FFF:
                    if proto != 6:
                        if proto == 1:
                            sink.add_icmp(icmp4_error(buf, data + ifc.hdr, data + cap), frame, tns)
                        skipped += 1
                        continue
                    if total == 0:  # TSO: the frame's length stands for it
                        total = (orig if orig > cap else cap) - ifc.hdr
                    plen = total - 20 - (offflags >> 12) * 4
                    if plen < 0 or offflags < 0x5000:
                        skipped += 1
                        continue
                    yield (
                        frame - skipped,
                        new(
                            cls,
                            (
                                frame,
                                seconds(tns),
                                ip4[src],
                                sport,
                                ip4[dst],
                                dport,
                                seq,
                                ack,
                                offflags & 0x0FFF,
                                win,
                                plen,
                                name,
                                tns,
                            ),
                        ),
                    )
                    continue
            fields = ifc.decode(buf, data, cap, orig if orig > cap else cap)
            if fields is not None:
                yield frame - skipped, new(cls, (frame, seconds(tns), *fields, name, tns))
            else:
                skipped += 1
                sink.add_icmp(icmp_error_in_frame(ifc.linktype, buf, data, cap), frame, tns)
                sink.headers_cut += header_cut(ifc.linktype, buf, data, cap, orig)
    finally:
        sink.packets = frame
        sink.tcp_packets = frame - skipped
