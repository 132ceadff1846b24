"""Classic pcap, libpcap's file format: its magics, file header and record headers, record
framing, and a writer.

What the format is lives here, once, with its reference framing loop (`read_segments`, which
`reader.TcpCapture` runs). The column reader (`chunks`) keeps its own loop inline, for speed,
but takes the magics, the header layouts and the timestamp units from this module; `annotate`,
the live packet count (`report.progress`) and the capture writers of the tests and of the
benchmark use its functions.

A file is a 24-byte file header, then records: a record header and the bytes captured. The
magic, in the file's byte order (either), tells the timestamp unit of the records (micro- or
nanoseconds) and the record header's length (16 bytes; 24 in the "modified" pcap of
Kuznetzov's patches, whose 8 more bytes we do not read). A record with fewer bytes than its
header says is cut short: the file ends there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from orchestrator.errors import CaptureFormatError
from orchestrator.pcap.icmp import icmp4_error, icmp_error_in_frame
from orchestrator.pcap.layout import Layout
from orchestrator.pcap.links import Link, header_cut, ip4_names
from orchestrator.pcap.segment import CHUNK, MAX_RECORD, Sink, TcpPacket, new_packet

__all__ = [
    "FILE_HEADER",
    "MAGICS",
    "MAGIC_MODIFIED",
    "MAGIC_NS",
    "MAGIC_US",
    "MODIFIED_RECORD_HEADER",
    "RECORD_HEADER",
    "FileHeader",
    "Magic",
    "Record",
    "Writer",
    "byte_order",
    "count_records",
    "parse_header",
    "read_records",
    "read_segments",
]

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
MAGIC_MODIFIED = 0xA1B2CD34

FILE_HEADER = Layout(
    ("magic", "I"),
    ("version_major", "H"),
    ("version_minor", "H"),
    ("thiszone", "i"),
    ("sigfigs", "I"),
    ("snaplen", "I"),
    ("network", "I"),  # the link type in the low 16 bits
)
RECORD_HEADER = Layout(
    ("sec", "I"),
    ("frac", "I"),  # micro- or nanoseconds, as the magic says
    ("cap", "I"),  # bytes captured, that follow
    ("orig", "I"),  # the packet's length on the wire
)
MODIFIED_RECORD_HEADER = Layout(
    *RECORD_HEADER.fields, ("ifindex", "I"), ("protocol", "H"), ("pkt_type", "B"), ("pad", "x")
)


class Magic(NamedTuple):
    """What a magic says of the records."""

    record: Layout  # their header
    digits: int  # their fraction counts 10^-digits seconds
    ns_per_unit: int
    s_per_unit: float  # written out: 1000 * 1e-9 is not 1e-6 in floating point


MAGICS = {
    MAGIC_US: Magic(RECORD_HEADER, 6, 1000, 1e-6),
    MAGIC_NS: Magic(RECORD_HEADER, 9, 1, 1e-9),
    MAGIC_MODIFIED: Magic(MODIFIED_RECORD_HEADER, 6, 1000, 1e-6),
}


class FileHeader(NamedTuple):
    endian: str  # "<" or ">"
    magic: int
    snaplen: int
    linktype: int

    @property
    def kind(self) -> Magic:
        return MAGICS[self.magic]

    @property
    def record_len(self) -> int:
        return MAGICS[self.magic].record.size

    def time_ns(self, sec: int, frac: int) -> int:
        """A record's time in epoch nanoseconds."""
        return sec * 1_000_000_000 + frac * MAGICS[self.magic].ns_per_unit


class Record(NamedTuple):
    sec: int
    frac: int
    cap: int
    orig: int
    data: bytes


def byte_order(head: bytes) -> str | None:
    """The byte order ("<" or ">") of a classic pcap file that starts with `head`; None if its
    first 4 bytes are no pcap magic."""
    if len(head) < 4:
        return None
    for endian in "<>":
        if FILE_HEADER.field_struct("magic", endian).unpack_from(head)[0] in MAGICS:
            return endian
    return None


def parse_header(head: bytes) -> FileHeader:
    """A classic pcap file header (the file's first 24 bytes)."""
    endian = byte_order(head)
    if endian is None or len(head) < FILE_HEADER.size:
        raise CaptureFormatError("not a classic pcap file header")
    magic, _major, _minor, _zone, _sigfigs, snaplen, network = FILE_HEADER.struct(endian).unpack_from(head)
    return FileHeader(endian, magic, snaplen, network & 0xFFFF)


def read_records(f: BinaryIO, header: FileHeader) -> Iterator[Record]:
    """The records that follow the file header, in order; stops at a record cut short."""
    size = header.record_len
    unpack = RECORD_HEADER.struct(header.endian).unpack_from
    while True:
        head = f.read(size)
        if len(head) < size:
            return
        sec, frac, cap, orig = unpack(head)
        data = f.read(cap)
        if len(data) < cap:
            return
        yield Record(sec, frac, cap, orig, data)


def count_records(buf: bytes, pos: int, header: FileHeader) -> tuple[int, int]:
    """The whole records in `buf` from `pos`: how many, and where the first one not whole starts."""
    size = header.record_len
    cap_at = RECORD_HEADER.offsets["cap"]
    unpack_cap = RECORD_HEADER.field_struct("cap", header.endian).unpack_from
    n = len(buf)
    count = 0
    while n - pos >= size:
        (cap,) = unpack_cap(buf, pos + cap_at)
        if n - pos < size + cap:
            break
        count += 1
        pos += size + cap
    return count, pos


class Writer:
    """A classic little-endian pcap: the file header at once, then a record per `write`."""

    def __init__(self, f: BinaryIO, linktype: int, snaplen: int, *, nano: bool = False) -> None:
        magic = MAGIC_NS if nano else MAGIC_US
        f.write(FILE_HEADER.struct("<").pack(magic, 2, 4, 0, 0, snaplen, linktype))
        self._write = f.write
        self._pack = RECORD_HEADER.struct("<").pack

    def write(self, sec: int, frac: int, data: bytes, orig: int | None = None) -> None:
        """One record: `data` as captured, `frac` in the file's unit, `orig` the packet's length
        on the wire (by default what was captured)."""
        self._write(self._pack(sec, frac, len(data), len(data) if orig is None else orig) + data)


def read_segments(f: BinaryIO, sink: Sink) -> Iterator[tuple[int, TcpPacket]]:  # noqa: PLR0915 - the hot loop, inlined on purpose
    """The TCP segments of a classic pcap file, as (position, segment) pairs: the reference
    framing loop (`reader.TcpCapture` calls it). What it reads goes to `sink`: the link type, the
    ICMP errors, where the file is cut short, the counts."""
    header = parse_header(f.read(FILE_HEADER.size))
    link = Link(header.linktype)
    sink.linktypes.add(link.linktype)
    fast, need, hdr, decode = link.fast, link.need, link.hdr, link.decode
    kind = header.kind
    ns_per_unit, s_per_unit, rec_hdr = kind.ns_per_unit, kind.s_per_unit, kind.record.size
    unpack_hdr = RECORD_HEADER.struct(header.endian).unpack_from  # its first 16 bytes
    name = sink.name
    new = new_packet
    cls = TcpPacket
    ip4 = ip4_names
    read = f.read
    frame = 0
    skipped = 0  # frames that are not TCP (counting these is cheaper than counting TCP)
    buf = read(CHUNK)
    n = len(buf)
    pos = 0
    try:
        while True:
            if n - pos < rec_hdr:
                rest, buf = buf[pos:], b""  # let the old chunk go before reading the next
                more = read(CHUNK)
                if not more:
                    if rest:
                        sink.cut("the file ends inside a record header", frame)
                    break
                buf = rest + more
                n = len(buf)
                pos = 0
                continue
            sec, frac, cap, orig = unpack_hdr(buf, pos)
            data = pos + rec_hdr
            end = data + cap
            if end > n:
                if cap > MAX_RECORD:
                    sink.cut(f"a corrupt record (captured length {cap})", frame)
                    break
                rest, buf = buf[pos:], b""
                more = read(max(CHUNK, end - n))
                if not more:
                    sink.cut("the file ends inside a packet", frame)
                    break
                buf = rest + more
                n = len(buf)
                pos = 0
                continue
            frame += 1
            pos = end
            if cap >= need:
                # Link + IPv4 + TCP in one unpack: the common case, inlined.
                etype, vihl, total, frag, proto, src, dst, sport, dport, seq, ack, offflags, win = fast(
                    buf, data
                )
                if etype == 0x0800 and vihl == 0x45 and not frag & 0x1FFF:
                    if proto != 6:
                        if proto == 1:
                            ns = sec * 1_000_000_000 + frac * ns_per_unit
                            sink.add_icmp(icmp4_error(buf, data + hdr, end), frame, ns)
                        skipped += 1
                        continue
                    if total == 0:  # TSO: the frame's length stands for it
                        total = (orig if orig > cap else cap) - hdr
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
                                sec + frac * s_per_unit,
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
                                sec * 1_000_000_000 + frac * ns_per_unit,
                            ),
                        ),
                    )
                    continue
            fields = decode(buf, data, cap, orig if orig > cap else cap)
            if fields is not None:
                t = sec + frac * s_per_unit
                yield (
                    frame - skipped,
                    new(cls, (frame, t, *fields, name, sec * 1_000_000_000 + frac * ns_per_unit)),
                )
            else:
                skipped += 1
                ns = sec * 1_000_000_000 + frac * ns_per_unit
                sink.add_icmp(icmp_error_in_frame(link.linktype, buf, data, cap), frame, ns)
                sink.headers_cut += header_cut(link.linktype, buf, data, cap, orig)
    finally:
        sink.packets = frame
        sink.tcp_packets = frame - skipped
