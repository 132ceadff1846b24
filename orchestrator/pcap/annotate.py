"""A copy of a capture as pcapng, with notes as packet comments: in Wireshark, "server power off"
sits on the first packet at or after the fault, next to the packets around it.

Every record is copied as it is (same order, same bytes, same timestamps), so the frame numbers
stay the ones the verdict's evidence names. A note goes on the first packet at or after its
time; a note after the last packet goes on the last packet, saying so. Reads classic pcap (both
byte orders, micro- and nanosecond) and pcapng (comments added to Enhanced Packet Blocks, other
blocks copied untouched), through `pcap` and `pcapng`, which know the formats; writes with
`pcapng.Writer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from orchestrator.pcap import pcap, pcapng
from orchestrator.pcap.reader import read_tcp


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
    ng = read_tcp(src).format == "pcapng"  # checks the format, with the usual messages
    records = _pcapng_records if ng else _pcap_records
    with open(src, "rb") as f:
        placed = _place(notes, list(records(f)))
    with open(src, "rb") as f, open(dst, "wb") as out:
        if ng:
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


def _pcap_records(f: BinaryIO) -> Iterator[_Record]:
    header = pcap.parse_header(f.read(pcap.FILE_HEADER.size))
    for n, r in enumerate(pcap.read_records(f, header), 1):
        yield _Record(n, header.time_ns(r.sec, r.frac), True)


def _copy_pcap(f: BinaryIO, out: BinaryIO, comments: dict[int, list[str]], name: str) -> None:
    header = pcap.parse_header(f.read(pcap.FILE_HEADER.size))
    digits = header.kind.digits
    w = pcapng.Writer(out)
    w.section([(pcapng.SHB_USERAPPL, b"tcpscen")])
    w.interface(
        header.linktype,
        header.snaplen,
        [(pcapng.IF_NAME, name.encode()), (pcapng.IF_TSRESOL, bytes([digits]))],
    )
    per_sec = 10**digits
    for n, r in enumerate(pcap.read_records(f, header), 1):
        w.packet(r.sec * per_sec + r.frac, r.data, r.orig, comments.get(n, ()))


# -- pcapng ---------------------------------------------------------------------------------


def _pcapng_records(f: BinaryIO) -> Iterator[_Record]:
    ifaces: list[pcapng.Interface] = []
    frame = 0
    for block in pcapng.read_blocks(f):
        if block.type == pcapng.SHB:
            ifaces = []
        elif block.type == pcapng.IDB:
            ifaces.append(pcapng.parse_idb(block.data, 0, len(block.data), block.endian))
        elif block.type in pcapng.PACKET_BLOCKS:
            frame += 1
            if block.type == pcapng.EPB:
                iface, hi, lo, _cap, _orig = pcapng.EPB_BODY.struct(block.endian).unpack_from(
                    block.data, pcapng.BLOCK_HEADER.size
                )
                face = ifaces[iface] if iface < len(ifaces) else _UNKNOWN
                yield _Record(frame, face.time_ns(hi, lo), True)
            else:
                yield _Record(frame, 0, False)


_UNKNOWN = pcapng.Interface(linktype=-1, snaplen=0)  # an EPB's interface that is not described


def _copy_pcapng(f: BinaryIO, out: BinaryIO, comments: dict[int, list[str]]) -> None:
    w = pcapng.Writer(out)
    frame = 0
    for block in pcapng.read_blocks(f):
        if block.type in pcapng.PACKET_BLOCKS:
            frame += 1
        w.copy(block, comments.get(frame, ()) if block.type == pcapng.EPB else ())
