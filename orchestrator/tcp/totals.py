"""Totals across a capture's connections: how many, how they ended, how many retransmitted or
sent keep-alive probes, which ends the kernel model gives and when, and the notes many share.

They are folded from one small `Tally` per connection, made where the connection was analysed
(`tally_of`, from its summary and its predictions): with several processes (`parallel`) each
process makes its connections' tallies, the parent puts them in tcp.stream order and folds them
(`totals_of`), so the totals are the same whatever the pass and the number of processes.

A note's numbers differ from connection to connection ("after 1.019 s idle", "frame 153"), so
notes are grouped by their words: each number (or list of numbers) is a slot, and a word's
plural 's' does not count ("1 probe", "3 probes"). A group's note shows each slot's value where
all agree, else its range ("1.019 to 1.025"), or "…" for frame numbers and lists.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from orchestrator.tcp.connection import ConnectionSummary, Handshake, Side

if TYPE_CHECKING:
    from orchestrator.kernel.predict import KernelPrediction

__all__ = [
    "End",
    "EndTotal",
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
STREAMS_KEPT = 100  # stream numbers per group in the JSON, as the connections' frame lists

# A number, or a list of them ("0.206, 0.204, 0.424" or "..., ..."): one slot of a note. (Digits
# in a word, "tcp_retries2", make a slot too, the same in every note: shown as they are.)
_NUM = r"\d(?:[\d.]*\d)?"
_SLOT = re.compile(rf"({_NUM}(?:, {_NUM})*(?:, \.\.\.)?)")
_PLURAL = re.compile(r"(?<=[a-z])s\b")
_HOLE = "\x00"


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
    # Each note as its words with holes (interned: pickled once per process) and its slots.
    notes: tuple[tuple[str, tuple[str, ...]], ...]


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
        notes=tuple(_shape(n) for n in c.notes),
    )


@functools.lru_cache(maxsize=1 << 12)  # many connections share a note word for word
def _shape(note: str) -> tuple[str, tuple[str, ...]]:
    parts = _SLOT.split(note)  # text, slot, text, ..., text
    return sys.intern(_HOLE.join(parts[0::2])), tuple(parts[1::2])


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
            _keep(self.streams, stream)


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
class NoteTotal:
    note: str
    count: int
    streams: list[int]


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


def _keep(streams: list[int], stream: int) -> None:
    if len(streams) < STREAMS_KEPT:
        streams.append(stream)


def totals_of(tallies: Sequence[Tally]) -> Totals:
    """The totals of connections whose tallies are `tallies`, in tcp.stream order."""
    starts = [t.start for t in tallies if t.start is not None]
    origin = min(starts) if starts else None
    handshake = {"complete": 0, "partial": 0, "missing": 0}
    ends: dict[tuple[End, Side | None], EndTotal] = {}
    retx, ka, zw = SidesTotal(), SidesTotal(), SidesTotal()
    model: dict[tuple[str, Side, bool], ModelEndTotal] = {}
    notes = _Notes()
    for stream, t in enumerate(tallies):
        handshake[t.handshake] += 1
        e = ends.setdefault((t.end, t.by), EndTotal(t.end, t.by, 0, []))
        e.count += 1
        _keep(e.streams, stream)
        retx.add(stream, t.retransmissions)
        ka.add(stream, t.keepalive_probes)
        zw.add(stream, t.zero_window)
        for m in t.model_ends:
            _add_model_end(model, m, stream, m.at if origin is None else origin)
        notes.add(stream, t.notes)
    order = {e: i for i, e in enumerate(END_ORDER)}
    return Totals(
        connections=len(tallies),
        start_time=origin,
        handshake=handshake,
        ends=sorted(ends.values(), key=lambda e: (-e.count, order[e.end], e.by or "")),
        retransmissions=retx,
        keepalive_probes=ka,
        zero_window=zw,
        model_ends=sorted(model.values(), key=lambda m: (-m.count, m.first_at, m.kind, m.side)),
        shared_notes=notes.shared(),
    )


def _add_model_end(
    model: dict[tuple[str, Side, bool], ModelEndTotal], m: ModelEnd, stream: int, origin: float
) -> None:
    found = model.get((m.kind, m.side, m.beyond_capture))
    if found is None:
        model[(m.kind, m.side, m.beyond_capture)] = ModelEndTotal(
            m.kind,
            m.side,
            m.beyond_capture,
            1,
            int(bool(m.within_tolerance)),
            m.at,
            m.at,
            stream,
            stream,
            [stream],
            origin,
        )
        return
    found.count += 1
    found.within_tolerance += bool(m.within_tolerance)
    _keep(found.streams, stream)
    if m.at < found.first_at:
        found.first_at, found.first_stream = m.at, stream
    if m.at > found.last_at:
        found.last_at, found.last_stream = m.at, stream


@dataclass(slots=True)
class _Slot:
    """What a group's notes have in one slot: the first value, whether all agree, the range."""

    first: str
    same: bool = True
    numbers: bool = True  # every value one number (not a list, nor an address)
    lo: float = 0.0
    hi: float = 0.0
    lo_text: str = ""
    hi_text: str = ""

    @classmethod
    def of(cls, value: str) -> _Slot:
        x = _number(value)
        if x is None:
            return cls(value, numbers=False)
        return cls(value, lo=x, hi=x, lo_text=value, hi_text=value)

    def add(self, value: str) -> None:
        if value == self.first:  # the commonest: nothing new
            return
        self.same = False
        if not self.numbers:
            return
        x = _number(value)
        if x is None:
            self.numbers = False
        elif x < self.lo:
            self.lo, self.lo_text = x, value
        elif x > self.hi:
            self.hi, self.hi_text = x, value

    def text(self, before: str) -> str:
        if self.same:
            return self.first
        if not self.numbers or before.endswith(("frame ", "frames ")):
            return "…"
        return f"{self.lo_text} to {self.hi_text}"


def _number(value: str) -> float | None:
    if "," in value:
        return None
    try:
        return float(value)
    except ValueError:  # an address, 10.199.1.1
        return None


@dataclass(slots=True)
class _NoteGroup:
    template: str  # the longest wording (plurals), the first stream's among equals
    count: int
    streams: list[int]
    slots: list[_Slot]


class _Notes:
    def __init__(self) -> None:
        self.groups: dict[str, _NoteGroup] = {}
        self.keys: dict[str, str] = {}  # template -> its words without plurals

    def add(self, stream: int, notes: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
        seen: set[str] = set()
        for template, slots in notes:
            key = self.keys.get(template)
            if key is None:
                key = self.keys[template] = _PLURAL.sub("", template)
            if key in seen:  # the same words twice in one connection count once
                continue
            seen.add(key)
            g = self.groups.get(key)
            if g is None:
                self.groups[key] = _NoteGroup(template, 1, [stream], [_Slot.of(v) for v in slots])
                continue
            g.count += 1
            _keep(g.streams, stream)
            if len(template) > len(g.template):
                g.template = template
            for slot, v in zip(g.slots, slots, strict=True):
                slot.add(v)

    def shared(self) -> list[NoteTotal]:
        groups = sorted(
            (g for g in self.groups.values() if g.count > 1), key=lambda g: (-g.count, g.streams[0])
        )
        return [NoteTotal(_fill(g.template, g.slots), g.count, g.streams) for g in groups]


def _fill(template: str, slots: list[_Slot]) -> str:
    parts = template.split(_HOLE)
    out = [parts[0]]
    for before, slot, after in zip(parts[:-1], slots, parts[1:], strict=True):
        out.append(slot.text(before))
        out.append(after)
    return "".join(out)


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
