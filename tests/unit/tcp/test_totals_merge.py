"""Totals folded in parts and merged (`totals.Fold.merge`, as each process of a shared analysis
folds its own connections) are the totals of one fold of every connection in tcp.stream order:
on the tallies of real captures, and on made-up tallies full of ties (equal times, equal
numbers written differently, wordings of equal length), for many random shares."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from orchestrator.kernel.predict import predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.pcap.reader import read_tcp
from orchestrator.tcp.analysis import analyze_capture
from orchestrator.tcp.note_totals import shape
from orchestrator.tcp.totals import Fold, ModelEnd, Tally, tally_of, totals_json, totals_of

ROOT = Path(__file__).resolve().parents[3]
RECORDED = sorted((ROOT / "tests/unit").rglob("recorded/**/*.pcap"))


def _merged(tallies: list[Tally], rng: random.Random, parts: int) -> dict[str, object]:
    """Each tally dealt to one of `parts` folds at random (each fold in its own stream order),
    the folds merged in a random order."""
    folds = [Fold() for _ in range(parts)]
    for stream, t in enumerate(tallies):
        folds[rng.randrange(parts)].add(stream, t)
    rng.shuffle(folds)
    for other in folds[1:]:
        folds[0].merge(other)
    return totals_json(folds[0].totals())


def _recorded_tallies(path: Path) -> list[Tally]:
    analysis = analyze_capture(read_tcp(path))
    settings = parse_settings(["net.ipv4.tcp_retries2=3"], ["TCP_KEEPIDLE=1"])
    ends = [c.last_frame.time for c in analysis.connections if c.last_frame]
    end = max(ends) if ends else None
    return [tally_of(c, predict_connection(c, lambda _s: settings, [], end)) for c in analysis.connections]


def test_the_recorded_captures_are_many() -> None:
    assert len(RECORDED) > 40


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: str(p.relative_to(ROOT / "tests/unit")))
def test_merged_folds_of_a_recorded_capture_are_its_totals(path: Path) -> None:
    tallies = _recorded_tallies(path)
    whole = totals_json(totals_of(tallies))
    rng = random.Random(path.name)
    for parts in (1, 2, 3, 5):
        assert _merged(tallies, rng, parts) == whole


# Slot values that tie as numbers but not as text; and lists, addresses and words, in one
# wording only (elsewhere a range is shown).
_NUMBERS = ["1", "1.0", "1.00", "2", "0.5", "0.50", "2.0", "0.25"]
_MIXED = [*_NUMBERS, "3, 4", "10.0.0.1", "x"]
_NOTES = [
    ("server answered {} probe", _NUMBERS),
    ("server answered {} probes", _NUMBERS),
    ("gap {} s after {} s", _NUMBERS),
    ("gaps {} s after {} s", _NUMBERS),  # the same words, one letter longer
    ("RST (frame {}) from client", _NUMBERS),
    ("RST (frames {}) from client", _NUMBERS),
    ("seen {} times", _MIXED),
    ("{} probes after {} probe", _NUMBERS),  # equal lengths: the first stream's wording is kept
    ("{} probe after {} probes", _NUMBERS),
]


def _made_up(rng: random.Random, n: int) -> list[Tally]:
    out = []
    for _ in range(n):
        notes = []
        for _k in range(rng.randrange(4)):
            words, values = rng.choice(_NOTES)
            notes.append(shape(words.format(*(rng.choice(values) for _ in range(words.count("{}"))))))
        ends = tuple(
            ModelEnd(
                rng.choice(["abort", "keepalive abort"]),
                rng.choice(["client", "server"]),
                rng.choice([10.0, 10.5, 11.0]),  # equal times: the earliest stream among them is named
                rng.random() < 0.5,
                rng.choice([True, False, None]),
            )
            for _m in range(rng.randrange(3))
        )
        out.append(
            Tally(
                rng.choice([None, 5.0, 4.0, 6.0]),
                rng.choice(["complete", "partial", "missing"]),
                rng.choice(["fin", "fin-unanswered", "rst", "none", "handshake-failed"]),
                rng.choice(["client", "server", None]),
                (rng.randrange(3), rng.randrange(2)),
                (rng.randrange(2), 0),
                (0, rng.randrange(2)),
                ends,
                tuple(notes),
            )
        )
    return out


@pytest.mark.parametrize("seed", range(40))
def test_merged_folds_of_made_up_tallies_are_their_totals(seed: int) -> None:
    rng = random.Random(seed)
    tallies = _made_up(rng, rng.choice([1, 2, 7, 60, 250]))  # 250: more streams than a group keeps
    whole = totals_json(totals_of(tallies))
    for parts in (2, 3, 4):
        assert _merged(tallies, rng, parts) == whole


def test_the_made_up_tallies_reach_every_tie() -> None:
    """The cases the merge must keep as one fold does, all met by the seeds above."""
    tallies = [t for seed in range(40) for t in _made_up(random.Random(seed), 60)]
    t = totals_of(tallies)
    texts = [n.note for n in t.shared_notes]
    assert any(" to " in n for n in texts)  # a range
    assert any("…" in n for n in texts)  # frames, lists or words that differ
    assert any(m.first_at == 10.0 and m.count > 1 for m in t.model_ends)
    assert len({(m.kind, m.side) for m in t.model_ends}) < len(t.model_ends)  # beyond and not, apart
    assert any(n.startswith(("1 probe after", "1 probes after")) or " probe after " in n for n in texts)


def _noted(*notes: str) -> Tally:
    return Tally(1.0, "complete", "none", None, (0, 0), (0, 0), (0, 0), (), tuple(shape(n) for n in notes))


def test_notes_that_tie_keep_the_order_of_their_first_connection() -> None:
    """Two notes as common as each other, first seen in the same connection, are listed as that
    connection lists them, whichever process folded which connection, merged either way."""
    first, second = _noted("x after 1 s", "y after 1 s"), _noted("y after 2 s", "x after 2 s")
    whole = [n.note for n in totals_of([first, second]).shared_notes]
    assert whole == ["x after 1 to 2 s", "y after 1 to 2 s"]
    for order in ((0, 1), (1, 0)):
        folds = [Fold(), Fold()]
        folds[0].add(0, first)
        folds[1].add(1, second)
        into, other = folds[order[0]], folds[order[1]]
        into.merge(other)
        assert [n.note for n in into.totals().shared_notes] == whole
