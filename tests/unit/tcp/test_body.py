"""The connections' texts as the output gets them (`tcp/body.py`): encoded in parts (each
process its own connections) and joined in tcp.stream order, they write the bytes the texts
written one by one give, to a file's stream, to another encoding's (decoded again), and to a
stream with no bytes below it."""

from __future__ import annotations

import io
import random

import pytest

from orchestrator.tcp.body import EncodedBody, TextBody, encode_texts, join_encoded

TEXTS = ['{"client": "10.0.0.1:40000"}', "#1 10.0.0.1 → 10.0.0.2", "", "ü" * 3, "plain"]


def _parts(texts: list[str], rng: random.Random, n: int, encoding: str) -> bytes:
    owner = [rng.randrange(n) for _ in texts]
    parts = []
    for p in range(n):
        streams = [s for s, o in enumerate(owner) if o == p]
        parts.append((streams, encode_texts([texts[s] for s in streams], encoding, "strict")))
    rng.shuffle(parts)
    return join_encoded(parts, ", ".encode(encoding))


@pytest.mark.parametrize("seed", range(20))
def test_texts_encoded_in_parts_join_as_the_whole(seed: int) -> None:
    rng = random.Random(seed)
    texts = [rng.choice(TEXTS) + str(i) for i in range(rng.randrange(1, 60))]
    for n in (1, 2, 3):
        assert _parts(texts, rng, n, "utf-8") == ", ".join(texts).encode()


def _written(body: TextBody | EncodedBody, encoding: str) -> bytes:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")
    out.write("head[")
    body.write(out)
    out.write("]tail")
    out.flush()
    return raw.getvalue()


@pytest.mark.parametrize("encoding", ["utf-8", "UTF8", "utf-16-le"])
def test_an_encoded_body_writes_what_the_texts_do(encoding: str) -> None:
    """The same codec under another name takes the bytes as they are; another codec gets them
    decoded and written as text."""
    data = _parts(TEXTS, random.Random(1), 2, "utf-8")
    expected = _written(TextBody(TEXTS, ", "), encoding)
    assert _written(EncodedBody(data, "utf-8", "strict"), encoding) == expected
    assert "→".encode(encoding) in expected


def test_a_stream_of_text_only_gets_text() -> None:
    out = io.StringIO()
    EncodedBody(", ".join(TEXTS).encode(), "utf-8", "strict").write(out)
    assert out.getvalue() == ", ".join(TEXTS)
