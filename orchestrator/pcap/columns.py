"""TCP segments as columns (numpy arrays), and how a chunk's records become them.

The reference reader (`reader.TcpCapture`) builds one Python tuple per segment; that alone
costs about 0.8 µs a segment. The column reader (`chunks`, and `ngchunks` for pcapng) instead
has its framing loop cut each record's first bytes out of the chunk (one slice per record), and
numpy decodes the link, IPv4 and TCP headers of the whole chunk at once through a structured
view (`Slice`, `decode`). `vector` then analyses most segments without ever making a Python
object for them.

Records whose TCP segment does not fit the fast layout (IPv6, VLAN tags, IPv4 options, a short
record) are decoded by the reference reader's own decoders (`links`), so that both readers agree
by construction; a chunk with any of them comes as (position, segment) pairs instead (`assemble`).
Non-TCP records go through the reference decoders too, for the ICMP errors they may carry.

A reader may be given a filter (`RowFilter`: a process's share of the connections, `parallel`):
then only the segments it keeps are taken out of the decoded records (`_kept`), each still at
its position among all the capture's segments, and the capture's counters count them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Protocol

import numpy as np
import numpy.typing as npt

from orchestrator.pcap import reader
from orchestrator.pcap.icmp import Found, icmp_error_in_frame
from orchestrator.pcap.links import Link, header_cut, ip4_names
from orchestrator.pcap.reader import TcpCapture, TcpPacket

__all__ = [
    "CHUNK",
    "Chunk",
    "Columns",
    "Group",
    "RowFilter",
    "Slice",
    "Walks",
    "assemble",
    "decode",
    "gather",
    "no_columns",
]

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
_new = tuple.__new__
# Bytes the column readers read at a time; read at each reading, so that tests can make it small.
CHUNK = reader.CHUNK

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
FAST_NEED = 36  # bytes of IPv4 + TCP that the fast layout reads
# The fields `walk.decode_fields` reads, in its order (after the EtherType).
_DECODED = ("vihl", "total", "frag", "proto", "src", "dst", "sport", "dport", "seq", "ack", "offflags", "win")


@dataclass(frozen=True, slots=True)
class Walks:
    """The compiled steps of `walk`: `walk_records`, `walk_epbs` and `decode_fields`."""

    records: Callable[..., tuple[int, int, int]]
    epbs: Callable[..., tuple[int, int]]
    fields: Callable[..., None]
    gather: Callable[..., None]


def gather(u8: npt.NDArray[np.uint8], offsets: I64, skip: int, width: int, walks: Walks | None) -> np.ndarray:
    """Each record's slice (`width` bytes from `skip` past its offset in the padded chunk `u8`),
    as the rows of one array."""
    if walks is None:
        return u8[offsets[:, None] + (skip + np.arange(width))]  # type: ignore[no-any-return]
    out = np.empty((len(offsets), width), dtype=np.uint8)
    walks.gather(u8, offsets, skip, out)
    return out


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


class Slice:
    """Where the fields are in each record's slice: the record's header (`head`: name, numpy
    format, offset), then the link header, then plain IPv4 and TCP."""

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
        self.need = hdr + FAST_NEED
        self.head_len = head_len
        self.width = head_len + self.need
        self.dtype = np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize or self.width}
        )
        # Where `walk.decode_fields` finds them in a slice (-1: no EtherType).
        at = dict(zip(names, offsets, strict=True))
        self.field_offsets = np.array([at.get("etype", -1)] + [at[n] for n in _DECODED], dtype=np.int64)


class RowFilter(Protocol):
    """Which TCP segments a reader keeps (the others are counted, and take their positions, but
    are not handed out): as columns (IPv4 addresses as numbers), and one by one."""

    def rows(self, src: I64, sport: I64, dst: I64, dport: I64) -> Mask: ...

    def packet(self, p: TcpPacket) -> bool: ...


@dataclass(slots=True)
class Group:
    """Records of one layout, decoded: the TCP segments the fast layout read that the filter
    keeps (as columns; `pos` their rank among all this group's fast ones, 0 first), the others
    that are TCP (as packets, all), and ICMP errors by frame. `fast`: which records the fast
    layout read as TCP, of `frames` (their frame numbers)."""

    columns: Columns
    rare: list[TcpPacket]
    icmp: list[tuple[int, int, Found]]  # frame, ns, the error
    fast: Mask
    frames: I64

    @property
    def count(self) -> int:
        """How many TCP segments the fast layout read, kept or not."""
        return int(np.count_nonzero(self.fast))


def decode(
    capture: TcpCapture,
    lay: Slice,
    buf: bytes | bytearray | memoryview,
    rec: np.ndarray,
    frames: I64,
    data: I64,
    tns: I64,
    times: npt.NDArray[np.float64],
    walks: Walks | None = None,
    keep: RowFilter | None = None,
) -> Group:
    """Records of one layout: `frames` their frame numbers, `data` where each packet starts in
    `buf`, `tns` and `times` their capture times (ns, and seconds as the reference reader
    computes them). `walks`: compiled steps (`walk`), else numpy decodes them. `keep`: which of
    the fast layout's segments to hand out (None: all)."""
    cap = rec["cap"].astype(np.int64)
    orig = np.maximum(rec["orig"].astype(np.int64), cap)
    if walks is not None:  # compiled: record by record, the same arithmetic
        out = np.empty((12, len(rec)), dtype=np.int64)  # a row per field: each one contiguous
        raw = rec.view(np.uint8).reshape(len(rec), rec.dtype.itemsize)
        walks.fields(raw, cap, orig, lay.field_offsets, lay.need, lay.hdr, out)
        simple, good = out[0] == 1, out[1] == 1
        slow = ~simple | (out[11] == 1)
        by_name = {name: out[k] for k, name in _FIELD_COLUMNS}
    else:
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
        by_name = {name: rec[field].astype(np.int64) for name, field in _RECORD_COLUMNS}
        by_name["flags"] = offflags & 0x0FFF
        by_name["payload_len"] = plen
    rare, icmp = _slow_records(capture, lay, buf, slow, data, cap, orig, frames, tns, times)
    return Group(_kept(capture.name, good, by_name, frames, tns, times, keep), rare, icmp, good, frames)


def _kept(
    file: str,
    good: Mask,
    by_name: dict[str, I64],
    frames: I64,
    tns: I64,
    times: npt.NDArray[np.float64],
    keep: RowFilter | None,
) -> Columns:
    """The columns of the records the fast layout read as TCP (`good`) and `keep` keeps (the
    fields, `by_name`, of every record), each with its rank among the `good` ones as `pos`."""
    if keep is not None:
        at = np.flatnonzero(
            good & keep.rows(by_name["src"], by_name["sport"], by_name["dst"], by_name["dport"])
        )
        rank = at if good.all() else (np.cumsum(good) - 1)[at]
    else:
        at = np.flatnonzero(good)
        rank = np.arange(len(at), dtype=np.int64)
    if len(at) == len(frames):  # every record: the arrays as they are
        return Columns(pos=rank, frame=frames, time=times, tns=tns, **by_name, file=file)
    return Columns(
        pos=rank,
        frame=frames[at],
        time=times[at],
        tns=tns[at],
        **{k: v[at] for k, v in by_name.items()},
        file=file,
    )


# The numpy decoding's columns read as they are from the records: (column, field).
_RECORD_COLUMNS = (
    ("src", "src"),
    ("sport", "sport"),
    ("dst", "dst"),
    ("dport", "dport"),
    ("seq", "seq"),
    ("ack", "ack"),
    ("window", "win"),
)


# The compiled decoding's output columns (`walk.decode_fields`), by their index there.
_FIELD_COLUMNS = (
    (2, "src"),
    (3, "sport"),
    (4, "dst"),
    (5, "dport"),
    (6, "seq"),
    (7, "ack"),
    (8, "flags"),
    (9, "window"),
    (10, "payload_len"),
)


def _slow_records(
    capture: TcpCapture,
    lay: Slice,
    buf: bytes | bytearray | memoryview,
    slow: npt.NDArray[np.bool_],
    data: I64,
    cap: I64,
    orig: I64,
    frames: I64,
    tns: I64,
    times: npt.NDArray[np.float64],
) -> tuple[list[TcpPacket], list[tuple[int, int, Found]]]:
    """The records the fast layout does not read, through the reference decoders: the TCP
    segments among them, and the ICMP errors about TCP. `buf` may be a view of a reused read
    buffer: copied to bytes (which the decoders need: an IPv6 address is a dictionary key) only
    when there are such records."""
    rare: list[TcpPacket] = []
    icmp: list[tuple[int, int, Found]] = []
    which = np.flatnonzero(slow).tolist()
    if not which:
        return rare, icmp
    buf = bytes(buf)
    decode_one, linktype = lay.link.decode, lay.link.linktype
    for j in which:
        d, c, fr, t = int(data[j]), int(cap[j]), int(frames[j]), int(tns[j])
        o = int(orig[j])
        fields_ = decode_one(buf, d, c, o)
        if fields_ is None:
            capture.headers_cut += header_cut(linktype, buf, d, c, o)
            found = icmp_error_in_frame(linktype, buf, d, c)
            if found is not None:
                icmp.append((fr, t, found))
        else:
            rare.append(_new(TcpPacket, (fr, float(times[j]), *fields_, capture.name, t)))
    return rare, icmp


def assemble(
    capture: TcpCapture,
    groups: list[Group],
    tcp0: int,
    rare: Sequence[TcpPacket] = (),
    icmp: Sequence[tuple[int, int, Found]] = (),
    keep: RowFilter | None = None,
) -> tuple[Chunk | None, int]:
    """A chunk from its groups (and the rare packets and ICMP errors of other blocks): the TCP
    segments `keep` keeps (None: all) in file order, each with its position among all of them;
    ICMP errors recorded in file order. Returns the chunk (None if it keeps no segment) and its
    count of TCP segments, kept or not."""
    for frame, ns, found in sorted([*icmp, *(e for g in groups for e in g.icmp)]):
        capture.add_icmp(found, frame, ns)
    rare = sorted([*rare, *(p for g in groups for p in g.rare)], key=lambda p: p.frame)
    fast = [g for g in groups if g.count]
    count = sum(g.count for g in fast) + len(rare)
    cols = fast[0].columns if len(fast) == 1 else _concat([g.columns for g in fast], capture.name)
    if len(fast) > 1 or rare:  # positions among the segments of every group and the rare ones
        every = np.sort(np.concatenate([*(g.frames[g.fast] for g in fast), _frames(rare)]))
        cols.pos = np.searchsorted(every, cols.frame)
    if rare:  # a few odd segments: this chunk goes the reference way, in file order
        fast_packets = zip(cols.pos.tolist(), cols.packets(np.arange(len(cols.frame))), strict=True)
        odd = [(int(np.searchsorted(every, p.frame)), p) for p in rare if keep is None or keep.packet(p)]
        pairs = [(tcp0 + 1 + i, p) for i, p in sorted([*fast_packets, *odd])]
        return (Chunk(pairs=pairs) if pairs else None), count
    cols.pos = cols.pos + (tcp0 + 1)
    return (Chunk(columns=cols) if len(cols.frame) else None), count


def _frames(packets: Sequence[TcpPacket]) -> I64:
    return np.array([p.frame for p in packets], dtype=np.int64)


_EMPTY = {
    f.name: np.zeros(0, dtype=np.float64 if f.name == "time" else np.int64)
    for f in fields(Columns)
    if f.name != "file"
}


def no_columns(file: str) -> Columns:
    return Columns(**_EMPTY, file=file)  # type: ignore[arg-type]


def _concat(pieces: list[Columns], file: str) -> Columns:
    """Several groups' columns as one, in frame order."""
    if not pieces:
        return no_columns(file)
    merged = {
        f.name: np.concatenate([getattr(c, f.name) for c in pieces])
        for f in fields(Columns)
        if f.name != "file"
    }
    order = np.argsort(merged["frame"], kind="stable")
    return Columns(**{k: v[order] for k, v in merged.items()}, file=file)
