"""Totals across a capture's connections: how many, how they ended, how many retransmitted or
sent keep-alive probes, which ends the kernel model gives and when, and the notes many share.

They are folded from one small `Tally` per connection, made where the connection was analysed
(`tally_of`, from its summary and its predictions): with several processes (`parallel`) each
process makes its connections' tallies, the parent puts them in tcp.stream order and folds them
(`totals_of`), so the totals are the same whatever the pass and the number of processes.
With several processes each folds its own tallies (`Fold.add`, with their tcp.stream numbers,
in order) and the parent merges the folds (`Fold.merge`): what is first, earliest or latest is
kept with its stream, so the merge is what one fold of every tally in order gives, and neither
the tallies nor their folding cross into the parent's serial tail. The notes many connections
share are grouped by their words (`note_totals`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from orchestrator.tcp.connection import ConnectionSummary, Handshake, Side
from orchestrator.tcp.note_totals import (
    STREAMS_KEPT,
    NoteFold,
    NoteTotal,
    Shape,
    keep,
    merge_groups,
    merge_streams,
    shape,
)

if TYPE_CHECKING:
    from orchestrator.kernel.predict import KernelPrediction

__all__ = [
    "STREAMS_KEPT",
    "End",
    "EndTotal",
    "Fold",
    "ModelEnd",
    "ModelEndTotal",
    "NoteTotal",
    "SidesTotal",
    "Tally",
    "Totals",
    "tally_of",
    "totals_json",
    "totals_of",
]

# How a connection ended, from its packets: its close, except that a handshake that never
# completed is said as such (a refused connect's RST is its `by`).
End = Literal["fin", "fin-unanswered", "rst", "none", "handshake-failed"]
END_ORDER: tuple[End, ...] = ("fin", "fin-unanswered", "rst", "none", "handshake-failed")


# Not frozen, like `Tally`: a frozen dataclass sets each field through object.__setattr__,
# three times the cost of a plain one, and both are made and unpickled once per connection.
# Nothing assigns to either.
@dataclass(slots=True)
class ModelEnd:
    """One end the kernel model gives a connection."""

    kind: str
    side: Side
    at: float  # epoch seconds
    beyond_capture: bool  # the model's end came after the capture's
    within_tolerance: bool | None


@dataclass(slots=True)
class Tally:
    """One connection as the totals read it: small, as it crosses between processes."""

    start: float | None  # its first segment, epoch seconds
    handshake: Handshake
    end: End
    by: Side | None  # the RST's sender (rst, a refused connect), the first FIN's (fin, fin-unanswered)
    retransmissions: tuple[int, int]  # client, server
    keepalive_probes: tuple[int, int]
    zero_window: tuple[int, int]
    model_ends: tuple[ModelEnd, ...]
    notes: tuple[Shape, ...]  # each note as its words with holes and its slots


def tally_of(c: ConnectionSummary, predictions: Sequence[KernelPrediction]) -> Tally:
    end: End = "handshake-failed" if c.handshake == "partial" else c.close
    by = c.rst_from if end in ("rst", "handshake-failed") else c.initiator if end != "none" else None
    return Tally(
        start=c.first_frame.time if c.first_frame else None,
        handshake=c.handshake,
        end=end,
        by=by,
        retransmissions=(c.retransmissions.client, c.retransmissions.server),
        keepalive_probes=(c.keepalive_probes.client, c.keepalive_probes.server),
        zero_window=(c.zero_window.client, c.zero_window.server),
        model_ends=tuple(
            ModelEnd(p.kind, p.side, p.at, p.beyond_capture, p.within_tolerance) for p in predictions
        ),
        notes=tuple(shape(n) for n in c.notes),
    )


@dataclass(slots=True)
class EndTotal:
    end: End
    by: Side | None
    count: int
    streams: list[int]


@dataclass(slots=True)
class SidesTotal:
    """Connections with any of a kind of segment, and those segments per sender."""

    connections: int = 0
    client: int = 0
    server: int = 0
    streams: list[int] = field(default_factory=list)

    def add(self, stream: int, counts: tuple[int, int]) -> None:
        if counts[0] or counts[1]:
            self.connections += 1
            self.client += counts[0]
            self.server += counts[1]
            keep(self.streams, stream)

    def merge(self, other: SidesTotal) -> None:
        self.connections += other.connections
        self.client += other.client
        self.server += other.server
        self.streams = merge_streams(self.streams, other.streams)


@dataclass(slots=True)
class ModelEndTotal:
    kind: str
    side: Side
    beyond_capture: bool
    count: int
    within_tolerance: int  # of them, how many the capture shows within the tolerance
    first_at: float  # the earliest and latest end, epoch seconds
    last_at: float
    first_stream: int
    last_stream: int
    streams: list[int]
    origin: float  # the capture's first segment, epoch seconds

    @property
    def first_s(self) -> float:
        """The earliest end, seconds after the capture's first segment."""
        return self.first_at - self.origin

    @property
    def last_s(self) -> float:
        return self.last_at - self.origin


@dataclass(slots=True)
class Totals:
    connections: int
    start_time: float | None  # the capture's first segment, epoch seconds
    handshake: dict[str, int]
    ends: list[EndTotal]
    retransmissions: SidesTotal
    keepalive_probes: SidesTotal
    zero_window: SidesTotal
    model_ends: list[ModelEndTotal]
    shared_notes: list[NoteTotal]  # notes of two connections or more, the commonest first


@dataclass(slots=True)
class _ModelFold:
    """A `ModelEndTotal` in the making; the earliest and latest end are each their first
    stream's among equal times."""

    total: ModelEndTotal  # its origin: its first end's time, until the capture's is known
    made: tuple[int, int]  # its first end: stream, place among that connection's ends

    def add(self, m: ModelEnd, stream: int) -> None:
        t = self.total
        t.count += 1
        t.within_tolerance += bool(m.within_tolerance)
        keep(t.streams, stream)
        if m.at < t.first_at:
            t.first_at, t.first_stream = m.at, stream
        if m.at > t.last_at:
            t.last_at, t.last_stream = m.at, stream

    def merge(self, later: _ModelFold) -> None:
        t, o = self.total, later.total
        t.count += o.count
        t.within_tolerance += o.within_tolerance
        t.streams = merge_streams(t.streams, o.streams)
        t.first_at, t.first_stream = min((t.first_at, t.first_stream), (o.first_at, o.first_stream))
        if (o.last_at, -o.last_stream) > (t.last_at, -t.last_stream):
            t.last_at, t.last_stream = o.last_at, o.last_stream


class Fold:
    """Totals in the making: tallies added in tcp.stream order (`add`), other connections'
    folds merged (`merge`), then `totals`. Small, to cross between processes."""

    def __init__(self) -> None:
        self.connections = 0
        self.origin: float | None = None  # the earliest first segment
        self.handshake = {"complete": 0, "partial": 0, "missing": 0}
        self.ends: dict[tuple[End, Side | None], EndTotal] = {}
        self.sides = (SidesTotal(), SidesTotal(), SidesTotal())  # retransmissions, probes, zero windows
        self.model: dict[tuple[str, Side, bool], _ModelFold] = {}
        self.notes = NoteFold()

    def add(self, stream: int, t: Tally) -> None:
        self.connections += 1
        if t.start is not None and (self.origin is None or t.start < self.origin):
            self.origin = t.start
        self.handshake[t.handshake] += 1
        e = self.ends.get((t.end, t.by))
        if e is None:
            e = self.ends[(t.end, t.by)] = EndTotal(t.end, t.by, 0, [])
        e.count += 1
        keep(e.streams, stream)
        retx, ka, zw = self.sides
        retx.add(stream, t.retransmissions)
        ka.add(stream, t.keepalive_probes)
        zw.add(stream, t.zero_window)
        for place, m in enumerate(t.model_ends):
            found = self.model.get((m.kind, m.side, m.beyond_capture))
            if found is None:
                total = ModelEndTotal(
                    m.kind, m.side, m.beyond_capture, 1, int(bool(m.within_tolerance)), m.at, m.at, stream,
                    stream, [stream], m.at,
                )  # fmt: skip
                self.model[(m.kind, m.side, m.beyond_capture)] = _ModelFold(total, (stream, place))
            else:
                found.add(m, stream)
        self.notes.add(stream, t.notes)

    def merge(self, other: Fold) -> None:
        """`other`'s connections (none of this fold's) added, as if folded in tcp.stream order."""
        self.connections += other.connections
        if other.origin is not None and (self.origin is None or other.origin < self.origin):
            self.origin = other.origin
        for kind, n in other.handshake.items():
            self.handshake[kind] += n
        for end, e in other.ends.items():
            mine = self.ends.get(end)
            if mine is None:
                self.ends[end] = e
            else:
                mine.count += e.count
                mine.streams = merge_streams(mine.streams, e.streams)
        for s, o in zip(self.sides, other.sides, strict=True):
            s.merge(o)
        merge_groups(self.model, other.model)
        self.notes.merge(other.notes)

    def totals(self) -> Totals:
        order = {e: i for i, e in enumerate(END_ORDER)}
        model = [m.total for m in sorted(self.model.values(), key=lambda m: m.made)]  # one fold's order
        for m in model:
            if self.origin is not None:
                m.origin = self.origin
        retx, ka, zw = self.sides
        return Totals(
            connections=self.connections,
            start_time=self.origin,
            handshake=self.handshake,
            ends=sorted(self.ends.values(), key=lambda e: (-e.count, order[e.end], e.by or "")),
            retransmissions=retx,
            keepalive_probes=ka,
            zero_window=zw,
            model_ends=sorted(model, key=lambda m: (-m.count, m.first_at, m.kind, m.side)),
            shared_notes=self.notes.shared(),
        )


def totals_of(tallies: Sequence[Tally]) -> Totals:
    """The totals of connections whose tallies are `tallies`, in tcp.stream order."""
    fold = Fold()
    for stream, t in enumerate(tallies):
        fold.add(stream, t)
    return fold.totals()


def totals_json(t: Totals) -> dict[str, object]:
    """The JSON of `Totals` (`analyze --json`'s `totals`)."""
    return {
        "connections": t.connections,
        "handshake": dict(t.handshake),
        "ends": [{"end": e.end, "by": e.by, "count": e.count, "streams": e.streams} for e in t.ends],
        "retransmissions": _sides_json(t.retransmissions),
        "keepalive_probes": _sides_json(t.keepalive_probes),
        "zero_window": _sides_json(t.zero_window),
        "model_ends": [
            {
                "kind": m.kind,
                "side": m.side,
                "beyond_capture": m.beyond_capture,
                "count": m.count,
                "within_tolerance": m.within_tolerance,
                "first": {"stream": m.first_stream, "at": m.first_at, "after_s": m.first_s},
                "last": {"stream": m.last_stream, "at": m.last_at, "after_s": m.last_s},
                "streams": m.streams,
            }
            for m in t.model_ends
        ],
        "shared_notes": [{"note": n.note, "count": n.count, "streams": n.streams} for n in t.shared_notes],
        "start_time": t.start_time,
    }


def _sides_json(s: SidesTotal) -> dict[str, object]:
    return {
        "connections": s.connections,
        "client": s.client,
        "server": s.server,
        "streams": s.streams,
    }
