"""The packets of each connection as rows of a ladder (sequence) diagram: pure data, no drawing.

A row is one segment as its sender's kernel sent it: time, direction, flags, sequence and
acknowledgement numbers relative to each side's initial sequence number (as Wireshark shows
them), length, and the marks of the TCP analysis (retransmission, keep-alive, ...). The marks
come from `analysis.analyze` through its per-packet hook, so the diagram says what the verdict
says.

Long captures stay readable: a run of segments that repeat the same shape (same sender, flags,
length, marks) becomes one group drawn once and marked "xN"; a repeating exchange (data, echo,
ACK) collapses the same way, up to `MAX_PERIOD` rows per group. Marked segments (SYN, FIN, RST,
retransmissions, probes, zero windows) never collapse: they are what the diagram is for. Memory
stays bounded: rows are collapsed as they come, and beyond `HEAD_ROWS` + `TAIL_ROWS` rows the
middle is left out (an `Elision` says how much).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from orchestrator.pcap.reader import ACK, SYN, TcpPacket, read_tcp
from orchestrator.tcp import analysis
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side
from orchestrator.tcp.delivery import Delivery, delivery_of
from orchestrator.tcp.merge import merge_all, merge_sent

MIN_REPEAT = 3  # fewer repetitions than this are drawn as they are
MAX_PERIOD = 4  # rows in the longest repeating exchange we look for
HEAD_ROWS = 400  # rows kept from the start of a long connection ...
TAIL_ROWS = 1200  # ... and from its end, where a disconnection story usually is
MAX_POINTS = 4000  # time-sequence points kept per connection (unmarked ones are thinned)
_CHUNK = 256  # raw rows buffered before collapsing
_KEEP = 4 * MAX_PERIOD  # raw rows left in the buffer, so a repetition can continue
_M32 = 0xFFFFFFFF

_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")

Mark = analysis.Mark  # (segment, its tcp.stream, its labels), for every segment
# `analysis.analyze(packets, *, mark=...)`, looked up when called; another one can stand in for it.
Analyzer = Callable[..., list[ConnectionSummary]]


@dataclass(frozen=True, slots=True)
class LadderRow:
    """One segment (or the first of a repeated group), as its sender sent it."""

    time: float  # epoch seconds of the send
    side: Side  # the sender
    flags: str  # Wireshark's order: "SYN, ACK", "PSH, ACK", ...
    seq: int  # relative to the sender's initial sequence number
    ack: int | None  # relative to the peer's; None without the ACK flag
    length: int
    window: int
    labels: frozenset[str]
    frame: FrameRef
    delivered: bool | None = None  # in the receiver's capture? None: no capture of the receiver
    phase: int = 0  # breaks (faults, app events) before it: a group never spans one
    count: int = 1  # how many times its group was sent (the "xN")
    period: int = 1  # rows in its group; the group's first row has group_start
    group_start: bool = True
    last_time: float = 0.0  # send time of the group's last repetition of this row
    last_seq: int = 0

    def shape(self) -> tuple[Side, str, int, frozenset[str], bool | None, int]:
        return (self.side, self.flags, self.length, self.labels, self.delivered, self.phase)

    @property
    def collapsible(self) -> bool:
        return not self.labels and "SYN" not in self.flags and "FIN" not in self.flags


@dataclass(frozen=True, slots=True)
class SeqPoint:
    """One segment for the time-sequence graph (never collapsed; unmarked ones may be thinned)."""

    time: float
    side: Side
    seq: int
    length: int
    ack: int | None
    labels: frozenset[str]


@dataclass(slots=True)
class Elision:
    """Rows left out of a long connection, between its head and its tail."""

    after_row: int  # index in `rows` after which they were
    packets: int = 0
    first_time: float = 0.0
    last_time: float = 0.0


@dataclass(slots=True)
class Ladder:
    stream: int
    client: str  # "IP:PORT"
    server: str
    rows: list[LadderRow] = field(default_factory=list)
    points: list[SeqPoint] = field(default_factory=list)
    packets: int = 0
    elision: Elision | None = None
    thinned: bool = False  # unmarked time-sequence points were thinned out


def flag_names(flags: int) -> str:
    return ", ".join(name for bit, name in enumerate(_FLAG_NAMES) if flags & (1 << bit)) or "<none>"


def run_ladders(
    sources: list[tuple[Path, str]], breaks: Sequence[float] = (), analyzer: Analyzer | None = None
) -> list[Ladder]:
    """Ladders of a run: each host's sends from its own capture (`merge_sent`), and whether
    each segment is in the receiver's capture. sources: (pcap, the capturing host's address);
    breaks: times a repeated group must not span (faults, app events).

    A segment is marked as its sender's own capture shows it (what Wireshark on that pcap says):
    in a one-way blackhole the peer's ACKs never reached the sender, so its resends are plain
    retransmissions, not the "spurious" ones the merged stream would make of them."""
    own = _own_marks(sources, analyzer or analysis.analyze)
    return build_ladders(merge_sent(sources), delivery_of(sources), breaks, analyzer, own)


def _own_marks(sources: list[tuple[Path, str]], run: Analyzer) -> dict[tuple[str, int], frozenset[str]]:
    """Marks of each host's own sends, from the analysis of all of that host's captures."""
    by_host: dict[str, list[Path]] = {}
    for path, address in sources:
        by_host.setdefault(address, []).append(path)
    own: dict[tuple[str, int], frozenset[str]] = {}
    for address, paths in by_host.items():

        def keep(p: TcpPacket, stream: int, labels: frozenset[str], address: str = address) -> None:
            if p.src == address:
                own[(p.file, p.frame)] = labels

        run(merge_all(paths), mark=keep)
    return own


def capture_ladders(path: Path, analyzer: Analyzer | None = None) -> list[Ladder]:
    """Ladders of any one capture: every segment in it, as captured at one point."""
    return build_ladders(iter(read_tcp(path)), None, (), analyzer)


def build_ladders(
    packets: Iterable[TcpPacket],
    delivery: Delivery | None = None,
    breaks: Sequence[float] = (),
    analyzer: Analyzer | None = None,
    own: dict[tuple[str, int], frozenset[str]] | None = None,
) -> list[Ladder]:
    """One ladder per connection, in Wireshark's tcp.stream order. One pass: the analysis runs
    over the packets and marks each one; the rows are built as the marks come. `own`, when
    given, overrides a packet's marks (see run_ladders)."""
    marks: dict[tuple[str, int], tuple[int, frozenset[str]]] = {}
    builders: dict[int | tuple[str, int, str, int], _Builder] = {}
    streams: dict[tuple[str, int, str, int], int] = {}
    cuts = sorted(breaks)

    def mark(p: TcpPacket, stream: int, labels: frozenset[str]) -> None:
        marks[(p.file, p.frame)] = (stream, labels)

    def feed() -> Iterator[TcpPacket]:
        for p in packets:
            yield p  # the analysis handles p (and marks it) before it asks for the next one
            key = _tuple_key(p)
            stream, labels = marks.pop((p.file, p.frame), (streams.get(key, -1), frozenset()))
            if own is not None:
                labels = own.get((p.file, p.frame), labels)
            streams[key] = stream
            slot: int | tuple[str, int, str, int] = stream if stream >= 0 else key
            if stream >= 0 and stream not in builders and key in builders:
                builders[stream] = builders.pop(key)  # unmarked until now: the same connection
            builder = builders.get(slot)
            if builder is None:
                builder = builders[slot] = _Builder()
            builder.take(p, labels, delivery, bisect.bisect_right(cuts, p.time))

    run: Analyzer = analyzer or analysis.analyze
    conns = run(feed(), mark=mark)
    ladders = []
    for conn in conns:
        builder = builders.get(conn.stream) or _unmarked(builders, conn)
        ladders.append(builder.finish(conn) if builder else Ladder(conn.stream, conn.client, conn.server))
    return ladders


def _tuple_key(p: TcpPacket) -> tuple[str, int, str, int]:
    a, b = (p.src, p.sport), (p.dst, p.dport)
    lo, hi = (a, b) if a <= b else (b, a)
    return (lo[0], lo[1], hi[0], hi[1])


def _unmarked(
    builders: dict[int | tuple[str, int, str, int], _Builder], conn: ConnectionSummary
) -> _Builder | None:
    """An analysis that did not report a stream index: find the connection by its endpoints."""
    (ca, cp), (sa, sp) = (e.rsplit(":", 1) for e in (conn.client, conn.server))
    a, b = (ca, int(cp)), (sa, int(sp))
    lo, hi = (a, b) if a <= b else (b, a)
    return builders.get((lo[0], lo[1], hi[0], hi[1]))


class _Builder:
    """Rows of one connection, collapsed as they come."""

    def __init__(self) -> None:
        self.client: tuple[str, int] | None = None
        self.base: dict[Side, int] = {}
        self.packets = 0
        self.buf: list[LadderRow] = []
        self.rows: list[LadderRow] = []
        self.group: int = 0  # period of the group `rows` ends with; 0: it ends with a single row
        self.elision: Elision | None = None
        self.points: list[SeqPoint] = []
        self.stride = 1  # keep one unmarked point in `stride`
        self.skipped = 0

    def take(self, p: TcpPacket, labels: frozenset[str], delivery: Delivery | None, phase: int) -> None:
        if self.client is None:  # refined in finish() from the analysis' own client/server
            self.client = (p.src, p.sport)
        side: Side = "client" if (p.src, p.sport) == self.client else "server"
        peer: Side = "server" if side == "client" else "client"
        if side not in self.base:
            self.base[side] = p.seq if p.flags & SYN else (p.seq - 1) & _M32
        has_ack = bool(p.flags & ACK)
        if has_ack and peer not in self.base:
            self.base[peer] = (p.ack - 1) & _M32
        seq = (p.seq - self.base[side]) & _M32
        ack = (p.ack - self.base[peer]) & _M32 if has_ack else None
        self.packets += 1
        delivered = delivery.delivered(p) if delivery is not None else None
        row = LadderRow(
            p.time, side, flag_names(p.flags), seq, ack, p.payload_len, p.window, labels,
            FrameRef(p.file, p.frame, p.time), delivered, phase, last_time=p.time, last_seq=seq,
        )  # fmt: skip
        self._point(SeqPoint(p.time, side, seq, p.payload_len, ack, labels))
        self.buf.append(row)
        if len(self.buf) >= _CHUNK:
            self._flush(keep=_KEEP)

    def finish(self, conn: ConnectionSummary) -> Ladder:
        self._flush(keep=0)
        rows, points = self.rows, self.points
        if self.client is not None and f"{self.client[0]}:{self.client[1]}" != conn.client:
            rows = [replace(r, side=_other(r.side)) for r in rows]  # the analysis knows better
            points = [replace(p, side=_other(p.side)) for p in points]
        return Ladder(
            conn.stream, conn.client, conn.server, rows, points, self.packets, self.elision, self.stride > 1
        )

    def _point(self, point: SeqPoint) -> None:
        if not point.labels:
            self.skipped += 1
            if self.skipped % self.stride:
                return
        self.points.append(point)
        if len(self.points) > MAX_POINTS:  # thin the unmarked points by half, and keep fewer from now on
            self.stride *= 2
            keep = [q for i, q in enumerate(self.points) if q.labels or i % 2 == 0]
            self.points = keep

    def _flush(self, keep: int) -> None:
        buf, i, limit = self.buf, 0, len(self.buf) - keep
        while i < limit:
            if self.group and self._continues(i):
                i += self.group
                continue
            period, reps = _best_repeat(buf, i)
            if reps:
                self._emit_group(buf, i, period, reps)
                i += period * reps
            else:
                self.rows.append(buf[i])
                self.group = 0
                i += 1
        del buf[:i]
        self._bound()

    def _continues(self, i: int) -> bool:
        """The buffer at i repeats the group the rows end with: count it in."""
        p = self.group
        block = self.buf[i : i + p]
        tail = self.rows[-p:]
        if len(block) < p or any(a.shape() != b.shape() for a, b in zip(block, tail, strict=True)):
            return False
        for k, row in enumerate(block):
            old = tail[k]
            self.rows[len(self.rows) - p + k] = replace(
                old, count=old.count + 1, last_time=row.time, last_seq=row.seq
            )
        return True

    def _emit_group(self, buf: list[LadderRow], i: int, period: int, reps: int) -> None:
        last = i + period * (reps - 1)
        for k in range(period):
            self.rows.append(
                replace(
                    buf[i + k],
                    count=reps,
                    period=period,
                    group_start=k == 0,
                    last_time=buf[last + k].time,
                    last_seq=buf[last + k].seq,
                )
            )
        self.group = period

    def _bound(self) -> None:
        """Leave out the middle of a very long connection, between its head and its tail."""
        excess = len(self.rows) - HEAD_ROWS - TAIL_ROWS
        if excess <= TAIL_ROWS // 4:  # trim in batches, not on every flush
            return
        rows = self.rows
        start, end = HEAD_ROWS, HEAD_ROWS + excess
        while start < end and not rows[start].group_start:  # never split a group
            start += 1
        while end < len(rows) - MAX_PERIOD and not rows[end].group_start:
            end += 1
        if start >= end:
            return
        cut = rows[start:end]
        if self.elision is None:
            self.elision = Elision(start - 1, first_time=cut[0].time)
        self.elision.packets += sum(r.count for r in cut)
        self.elision.last_time = max(r.last_time for r in cut)
        del rows[start:end]


def _best_repeat(buf: list[LadderRow], i: int) -> tuple[int, int]:
    """(period, repetitions) of the repeating block at i that covers the most rows, or (0, 0)."""
    best = (0, 0)
    for period in range(1, MAX_PERIOD + 1):
        block = buf[i : i + period]
        if len(block) < period or not all(r.collapsible for r in block):
            break
        shapes = [r.shape() for r in block]
        reps, j = 1, i + period
        while j + period <= len(buf) and all(buf[j + k].shape() == shapes[k] for k in range(period)):
            reps, j = reps + 1, j + period
        if reps >= MIN_REPEAT and period * reps > best[0] * best[1]:
            best = (period, reps)
    return best


def _other(side: Side) -> Side:
    return "server" if side == "client" else "client"
