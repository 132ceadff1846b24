"""The notes many connections share, for the totals (`totals`): grouped by their words.

A note's numbers differ from connection to connection ("after 1.019 s idle", "frame 153"), so
notes are grouped by their words: each number (or list of numbers) is a slot, and a word's
plural 's' does not count ("1 probe", "3 probes"). A group's note shows each slot's value where
all agree, else its range ("1.019 to 1.025"), or "…" for frame numbers and lists.

Each process folds its own connections' notes (`NoteFold.add`, in tcp.stream order) and the
parent merges the folds (`merge`): what was first, longest or smallest is kept with the stream
it came from, so that the merge gives what one fold of every connection in order gives.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

__all__ = ["NoteFold", "NoteTotal", "merge_groups", "merge_streams", "shape"]

STREAMS_KEPT = 100  # stream numbers per group in the JSON, as the connections' frame lists

# A number, or a list of them ("0.206, 0.204, 0.424" or "..., ..."): one slot of a note. (Digits
# in a word, "tcp_retries2", make a slot too, the same in every note: shown as they are.)
_NUM = r"\d(?:[\d.]*\d)?"
_SLOT = re.compile(rf"({_NUM}(?:, {_NUM})*(?:, \.\.\.)?)")
_PLURAL = re.compile(r"(?<=[a-z])s\b")
_HOLE = "\x00"

# A note as its words with holes (interned: pickled once per process) and its slots.
Shape = tuple[str, tuple[str, ...]]


@functools.lru_cache(maxsize=1 << 12)  # many connections share a note word for word
def shape(note: str) -> Shape:
    parts = _SLOT.split(note)  # text, slot, text, ..., text
    return sys.intern(_HOLE.join(parts[0::2])), tuple(parts[1::2])


def keep(streams: list[int], stream: int) -> None:
    if len(streams) < STREAMS_KEPT:
        streams.append(stream)


def merge_streams(a: list[int], b: list[int]) -> list[int]:
    """The first kept streams of two folds' (each the first of its own, in order)."""
    return sorted(a + b)[:STREAMS_KEPT]


class Group(Protocol):
    """A total in the making that began at `made` (stream, place) and takes a later one's."""

    @property
    def made(self) -> tuple[int, int]: ...

    def merge(self, later: Self) -> None: ...


K = TypeVar("K")
G = TypeVar("G", bound=Group)


def merge_groups(mine: dict[K, G], theirs: dict[K, G]) -> None:
    """Another fold's groups into `mine`, by key: the one that began first takes the other's,
    so each merged group is what one fold in tcp.stream order makes (`made` decides the order)."""
    for key, other in theirs.items():
        own = mine.get(key)
        if own is None:
            mine[key] = other
        elif other.made < own.made:
            other.merge(own)
            mine[key] = other
        else:
            own.merge(other)


@dataclass(slots=True)
class NoteTotal:
    note: str
    count: int
    streams: list[int]


@dataclass(slots=True)
class _Slot:
    """What a group's notes have in one slot: the first value, whether all agree, the range
    (each end's text is its first stream's, among equal numbers)."""

    first: str
    same: bool = True
    numbers: bool = True  # every value one number (not a list, nor an address)
    lo: float = 0.0
    hi: float = 0.0
    lo_text: str = ""
    hi_text: str = ""
    lo_stream: int = 0
    hi_stream: int = 0

    @classmethod
    def of(cls, value: str, stream: int) -> _Slot:
        x = _number(value)
        if x is None:
            return cls(value, numbers=False)
        return cls(value, lo=x, hi=x, lo_text=value, hi_text=value, lo_stream=stream, hi_stream=stream)

    def add(self, value: str, stream: int) -> None:
        if value == self.first:  # the commonest: nothing new
            return
        self.same = False
        if not self.numbers:
            return
        x = _number(value)
        if x is None:
            self.numbers = False
        elif x < self.lo:
            self.lo, self.lo_text, self.lo_stream = x, value, stream
        elif x > self.hi:
            self.hi, self.hi_text, self.hi_stream = x, value, stream

    def merge(self, later: _Slot) -> None:
        """`later`'s values (a group that began after this one's first stream) added."""
        self.same = self.same and later.same and later.first == self.first
        self.numbers = self.numbers and later.numbers
        if not self.numbers:
            return
        if (later.lo, later.lo_stream) < (self.lo, self.lo_stream):
            self.lo, self.lo_text, self.lo_stream = later.lo, later.lo_text, later.lo_stream
        if (later.hi, -later.hi_stream) > (self.hi, -self.hi_stream):
            self.hi, self.hi_text, self.hi_stream = later.hi, later.hi_text, later.hi_stream

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
    template_stream: int
    count: int
    streams: list[int]
    slots: list[_Slot]
    made: tuple[int, int]  # its first note: stream, place among that connection's notes

    def merge(self, later: _NoteGroup) -> None:
        self.count += later.count
        self.streams = merge_streams(self.streams, later.streams)
        if (len(later.template), -later.template_stream) > (len(self.template), -self.template_stream):
            self.template, self.template_stream = later.template, later.template_stream
        for slot, other in zip(self.slots, later.slots, strict=True):
            slot.merge(other)


class NoteFold:
    def __init__(self) -> None:
        self.groups: dict[str, _NoteGroup] = {}
        self.keys: dict[str, str] = {}  # template -> its words without plurals

    def add(self, stream: int, notes: tuple[Shape, ...]) -> None:
        seen: set[str] = set()
        for place, (template, slots) in enumerate(notes):
            key = self.keys.get(template)
            if key is None:
                key = self.keys[template] = _PLURAL.sub("", template)
            if key in seen:  # the same words twice in one connection count once
                continue
            seen.add(key)
            g = self.groups.get(key)
            if g is None:
                made = (stream, place)
                self.groups[key] = _NoteGroup(
                    template, stream, 1, [stream], [_Slot.of(v, stream) for v in slots], made
                )
                continue
            g.count += 1
            keep(g.streams, stream)
            if len(template) > len(g.template):
                g.template, g.template_stream = template, stream
            for slot, v in zip(g.slots, slots, strict=True):
                slot.add(v, stream)

    def merge(self, other: NoteFold) -> None:
        """Another fold's groups (other connections') added, as if folded in tcp.stream order."""
        merge_groups(self.groups, other.groups)

    def shared(self) -> list[NoteTotal]:
        """The notes of two connections or more, the commonest first (then by first stream)."""
        groups = sorted(self.groups.values(), key=lambda g: g.made)  # the order one fold makes them
        shared = sorted((g for g in groups if g.count > 1), key=lambda g: (-g.count, g.streams[0]))
        return [NoteTotal(_fill(g.template, g.slots), g.count, g.streams) for g in shared]


def _fill(template: str, slots: list[_Slot]) -> str:
    parts = template.split(_HOLE)
    out = [parts[0]]
    for before, slot, after in zip(parts[:-1], slots, parts[1:], strict=True):
        out.append(slot.text(before))
        out.append(after)
    return "".join(out)
