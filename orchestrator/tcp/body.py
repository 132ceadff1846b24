"""The connections' part of `analyze`'s output: their texts in tcp.stream order, joined by the
format's separator (", " in the JSON's list, a newline between the summary's blocks).

One process writes its texts as it makes them (`TextBody`), some at a time. A shared analysis
(`parallel`) has each process encode its own texts where it renders them, into one buffer with
their lengths (`Encoded`); the parent puts the pieces in tcp.stream order and joins them as
bytes (`EncodedBody`), so that no text is unpickled, joined or encoded in its serial tail (they
took 0.04 s of it on 9,547 connections: a tenth of a second's output in all).
"""

from __future__ import annotations

import codecs
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

__all__ = ["Body", "Encoded", "EncodedBody", "TextBody", "encode_texts", "join_encoded"]

_BATCH = 1024  # texts joined into one write: one write each cost a tenth of a second on 10,000


class Body(Protocol):
    """Texts joined, written to the output between the format's head and tail."""

    def write(self, out: TextIO) -> None: ...


@dataclass(slots=True)
class TextBody:
    """Texts as they are made, `joiner` between them."""

    texts: Iterable[str]
    joiner: str

    def write(self, out: TextIO) -> None:
        sep = ""
        for batch in _batched(self.texts):
            out.write(sep + self.joiner.join(batch))
            sep = self.joiner


@dataclass(slots=True)
class Encoded:
    """One process's texts, encoded: one buffer, and each text's length in it, in its order."""

    data: bytes
    lengths: list[int]


@dataclass(slots=True)
class EncodedBody:
    """Texts already joined and encoded (with `encoding` and `errors`)."""

    data: bytes
    encoding: str
    errors: str

    def write(self, out: TextIO) -> None:
        buffer = getattr(out, "buffer", None)
        if buffer is None or not _same_codec(out, self.encoding, self.errors):
            out.write(self.data.decode(self.encoding, self.errors))
            return
        out.flush()  # what the text layer holds (the head) goes first
        buffer.write(self.data)


def encode_texts(texts: Sequence[str], encoding: str, errors: str) -> Encoded:
    pieces = [t.encode(encoding, errors) for t in texts]
    return Encoded(b"".join(pieces), [len(p) for p in pieces])


def join_encoded(parts: Sequence[tuple[Sequence[int], Encoded]], joiner: bytes) -> bytes:
    """Every process's texts (each with its texts' tcp.stream numbers, together 0 to n - 1) in
    tcp.stream order, `joiner` between them."""
    slots: list[bytes | memoryview] = [b""] * sum(len(streams) for streams, _e in parts)
    for streams, encoded in parts:
        view, at = memoryview(encoded.data), 0
        for stream, n in zip(streams, encoded.lengths, strict=True):
            slots[stream] = view[at : at + n]
            at += n
    return joiner.join(slots)


def _same_codec(out: TextIO, encoding: str, errors: str) -> bool:
    try:
        return codecs.lookup(out.encoding).name == codecs.lookup(encoding).name and out.errors == errors
    except (LookupError, TypeError):  # a stream that names no codec
        return False


def _batched(texts: Iterable[str]) -> Iterator[list[str]]:
    """The texts `_BATCH` at a time (`itertools.batched`, from Python 3.12)."""
    it = iter(texts)
    while batch := list(itertools.islice(it, _BATCH)):
        yield batch
