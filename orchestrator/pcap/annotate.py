"""A copy of a capture as pcapng, with notes as packet comments: in Wireshark, "server power off"
sits on the first packet at or after the fault, next to the packets around it.

Every record is copied as it is (same order, same bytes, same timestamps), so the frame numbers
stay the ones the verdict's evidence names. A note goes on the first packet at or after its
time; a note after the last packet goes on the last packet, saying so. Reads classic pcap (both
byte orders, micro- and nanosecond) and pcapng (comments added to Enhanced Packet Blocks, other
blocks copied untouched).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import CaptureFormatError
from orchestrator.pcap.reader import PCAP_MAGIC_MODIFIED, PCAP_MAGIC_NS, PCAPNG_SHB, read_tcp

_EPB = 6
_IDB = 1
_OPT_COMMENT = 1
_OPT_END = 0
_OPT_IF_NAME = 2
_OPT_IF_TSRESOL = 9
_OPT_SHB_USERAPPL = 4
_BOM = 0x1A2B3C4D


@dataclass(frozen=True)
class Note:
    time: float  # epoch seconds
    text: str


@dataclass
class Annotated:
    """Where each note went: frame number (1-based, Wireshark's) -> its comments."""

    path: Path
    frames: dict[int, list[str]] = field(default_factory=dict)
    unplaced: list[Note] = field(default_factory=list)  # a capture without packets


@dataclass(frozen=True)
class _Record:
    frame: int
    time_ns: int
    commentable: bool  # an EPB, or a classic pcap record (which becomes one)


def annotate_capture(src: Path, dst: Path, notes: list[Note]) -> Annotated:
    """Write `dst` (pcapng): `src` with each note as a comment on its packet."""
    read_tcp(src)  # checks the format, with the usual messages
    with open(src, "rb") as f:
        head = f.read(4)
    pcapng = int.from_bytes(head, "little") == PCAPNG_SHB
    records = _pcapng_records if pcapng else _pcap_records
    with open(src, "rb") as f:
        placed = _place(notes, list(records(f)))
    with open(src, "rb") as f, open(dst, "wb") as out:
        if pcapng:
            _copy_pcapng(f, out, placed.frames)
        else:
            _copy_pcap(f, out, placed.frames, src.name)
    placed.path = dst
    return placed


def _place(notes: list[Note], records: list[_Record]) -> Annotated:
    done = Annotated(Path())
    candidates = [r for r in records if r.commentable]
    first_ns = min((r.time_ns for r in candidates), default=0)
    for note in sorted(notes, key=lambda n: n.time):
        if not candidates:
            done.unplaced.append(note)
            continue
        at = round(note.time * 1e9)
        target = next((r for r in candidates if r.time_ns >= at), None)
        text = note.text
        if target is None:  # after the capture's end (a powered-off host): on its last packet
            target = candidates[-1]
            text += " (after the last packet of this capture)"
        elif at < first_ns:
            text += " (before the first packet of this capture)"  # a capture started later (a reboot)
        done.frames.setdefault(target.frame, []).append(text)
    return done


# -- classic pcap ---------------------------------------------------------------------------


def _pcap_header(f: BinaryIO) -> tuple[str, int, int, int, int]:
    """(endian, magic, snaplen, linktype, record header length)."""
    head = f.read(24)
    endian = "<"
    (magic,) = struct.unpack_from("<I", head)
    if magic not in (0xA1B2C3D4, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED):
        endian = ">"
        (magic,) = struct.unpack_from(">I", head)
    snaplen, network = struct.unpack_from(endian + "II", head, 16)
    return endian, magic, snaplen, network & 0xFFFF, 24 if magic == PCAP_MAGIC_MODIFIED else 16


def _pcap_iter(f: BinaryIO) -> Iterator[tuple[int, int, int, int, bytes]]:
    """(sec, frac, caplen, origlen, data) per record; stops at a cut record."""
    endian, _, _, _, rec_len = _pcap_header(f)
    rec = struct.Struct(endian + "IIII")
    while True:
        head = f.read(rec_len)
        if len(head) < rec_len:
            return
        sec, frac, cap, orig = rec.unpack_from(head)
        data = f.read(cap)
        if len(data) < cap:
            return
        yield sec, frac, cap, orig, data


def _pcap_records(f: BinaryIO) -> Iterator[_Record]:
    _, magic, _, _, _ = _pcap_header(f)
    f.seek(0)
    unit = 1 if magic == PCAP_MAGIC_NS else 1000
    for n, (sec, frac, _, _, _) in enumerate(_pcap_iter(f), 1):
        yield _Record(n, sec * 1_000_000_000 + frac * unit, True)


def _copy_pcap(f: BinaryIO, out: BinaryIO, comments: dict[int, list[str]], name: str) -> None:
    _, magic, snaplen, linktype, _ = _pcap_header(f)
    f.seek(0)
    ns = magic == PCAP_MAGIC_NS
    shb = struct.pack("<IHHq", _BOM, 1, 0, -1)  # byte-order magic, version 1.0, section length unknown
    out.write(_block(PCAPNG_SHB, shb + _options([(_OPT_SHB_USERAPPL, b"tcpscen")])))
    idb_opts = [(_OPT_IF_NAME, name.encode()), (_OPT_IF_TSRESOL, bytes([9 if ns else 6]))]
    out.write(_block(_IDB, struct.pack("<HHI", linktype, 0, snaplen) + _options(idb_opts)))
    per_sec = 1_000_000_000 if ns else 1_000_000
    for n, (sec, frac, cap, orig, data) in enumerate(_pcap_iter(f), 1):
        ts = sec * per_sec + frac
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, cap, orig) + _pad(data)
        notes = comments.get(n)
        if notes:
            body += _options([(_OPT_COMMENT, t.encode()) for t in notes])
        out.write(_block(_EPB, body))


# -- pcapng ---------------------------------------------------------------------------------


def _blocks(f: BinaryIO) -> Iterator[tuple[str, int, bytes]]:
    """(endian, block type, whole block) per block."""
    endian = "<"
    while True:
        head = f.read(8)
        if len(head) < 8:
            return
        (btype,) = struct.unpack_from(endian + "I", head)
        if btype == PCAPNG_SHB:
            bom = f.read(4)
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            (length,) = struct.unpack_from(endian + "I", head, 4)
            rest = bom + f.read(length - 12)
        else:
            (length,) = struct.unpack_from(endian + "I", head, 4)
            if length < 12:
                raise CaptureFormatError(f"{getattr(f, 'name', '?')}: corrupt pcapng block (length {length})")
            rest = f.read(length - 8)
        if len(rest) < length - 8:
            return
        yield endian, btype, head + rest


def _resolution(block: bytes, endian: str) -> tuple[int, int]:
    """An IDB's timestamp unit as (num, den): ns = units * num // den."""
    p, stop = 16, len(block) - 4
    while p + 4 <= stop:
        code, olen = struct.unpack_from(endian + "HH", block, p)
        if code == _OPT_END:
            break
        if code == _OPT_IF_TSRESOL and olen >= 1:
            r = block[p + 4]
            if r & 0x80:
                return 1_000_000_000, 1 << (r & 0x7F)
            e = r & 0x7F
            return (10 ** (9 - e), 1) if e <= 9 else (1, 10 ** (e - 9))
        p += 4 + ((olen + 3) & ~3)
    return 1000, 1


def _pcapng_records(f: BinaryIO) -> Iterator[_Record]:
    units: list[tuple[int, int]] = []
    frame = 0
    for endian, btype, block in _blocks(f):
        if btype == PCAPNG_SHB:
            units = []
        elif btype == _IDB:
            units.append(_resolution(block, endian))
        elif btype in (_EPB, 2, 3):  # enhanced, obsolete and simple packet blocks are all frames
            frame += 1
            if btype == _EPB:
                iface, hi, lo = struct.unpack_from(endian + "III", block, 8)
                num, den = units[iface] if iface < len(units) else (1000, 1)
                yield _Record(frame, ((hi << 32) | lo) * num // den, True)
            else:
                yield _Record(frame, 0, False)


def _copy_pcapng(f: BinaryIO, out: BinaryIO, comments: dict[int, list[str]]) -> None:
    frame = 0
    for endian, btype, block in _blocks(f):
        if btype in (_EPB, 2, 3):
            frame += 1
        notes = comments.get(frame) if btype == _EPB else None
        if not notes:
            out.write(block)
            continue
        (cap,) = struct.unpack_from(endian + "I", block, 20)
        data_end = 28 + ((cap + 3) & ~3)
        old = block[data_end:-4]
        kept = _without_end(old, endian)
        added = b"".join(_option(_OPT_COMMENT, t.encode(), endian) for t in notes)
        body = block[8:data_end] + kept + added + struct.pack(endian + "HH", _OPT_END, 0)
        out.write(_block(_EPB, body, endian))


def _without_end(options: bytes, endian: str) -> bytes:
    """The options up to (not including) opt_endofopt."""
    p = 0
    while p + 4 <= len(options):
        code, olen = struct.unpack_from(endian + "HH", options, p)
        if code == _OPT_END:
            break
        p += 4 + ((olen + 3) & ~3)
    return options[:p]


# -- writing --------------------------------------------------------------------------------


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + _pad(value)


def _options(opts: list[tuple[int, bytes]]) -> bytes:
    return b"".join(_option(code, value) for code, value in opts) + struct.pack("<HH", _OPT_END, 0)


def _block(btype: int, body: bytes, endian: str = "<") -> bytes:
    length = 12 + len(body)
    return struct.pack(endian + "II", btype, length) + body + struct.pack(endian + "I", length)
