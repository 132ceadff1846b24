"""The per-segment hook of `analyze`: every segment is marked once, with its tcp.stream and
exactly the labels Wireshark gives it (tcp.analysis.* and the SYN/FIN/RST flags)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from orchestrator.pcap.reader import TcpPacket, read_tcp
from orchestrator.tcp.analysis import LABELS, analyze
from tests.helpers.pcaps import T0, Conv, random_conversation, tshark, tshark_fields, write_fast

Marks = dict[int, tuple[int, frozenset[str]]]


def marks_of(path: Path) -> Marks:
    marks: Marks = {}

    def mark(p: TcpPacket, stream: int, labels: frozenset[str]) -> None:
        assert p.frame not in marks, "marked twice"
        marks[p.frame] = (stream, labels)

    analyze(read_tcp(path), mark=mark)
    return marks


def tshark_marks(path: Path) -> Marks:
    if not tshark():
        pytest.skip("tshark is not installed: cannot compare with Wireshark")
    names = list(LABELS)
    rows = tshark_fields(path, ["frame.number", "tcp.stream", *LABELS.values()], "tcp")
    out: Marks = {}
    for frame, stream, *values in rows:
        # Analysis fields print a value when present; the flags print 1 or 0 (True/False in some versions).
        on = {name for name, v in zip(names, values, strict=True) if v not in ("", "0", "False")}
        out[int(frame)] = (int(stream), frozenset(on))
    return out


def crafted(path: Path) -> dict[str, int]:
    """One connection with one segment of each kind; returns the frame of each."""
    c = Conv()
    c.handshake()
    at: dict[str, int] = {}
    first = c.data("c", 100)
    at["retransmission"] = c.retransmit("c", first, dt=0.3)
    c.ack("s")
    lost = c.send("c", "PA", 100, dt=0.01, seq=c.nxt["c"] + 100)  # one segment lost before it
    for _ in range(3):
        c.ack("s", dt=0.0001, ack=c.nxt["c"] - 200)  # duplicate ACKs for the hole
    at["fast"] = c.send("c", "PA", 100, dt=0.001, seq=c.nxt["c"] - 200)
    c.ack("s", dt=0.001)
    at["spurious"] = c.retransmit("c", lost, dt=0.5)
    hole = c.nxt["s"]
    c.send("s", "PA", 50, dt=0.1, seq=hole + 50)  # the segment before it comes just after it
    at["out_of_order"] = c.send("s", "PA", 50, dt=0.0001, seq=hole)
    c.ack("c")
    at["keep_alive"] = c.keepalive("c", dt=5.0)
    c.ack("s", dt=0.001)
    at["zero_window"] = c.ack("s", dt=0.01, win=0)
    at["zero_window_probe"] = c.send("c", "PA", 1, dt=0.2, seq=c.nxt["c"])
    c.ack("s", dt=0.001, win=65160)
    at["fin"] = c.fin("c")
    at["rst"] = c.rst("s", with_ack=False)
    c.write(path)
    return at


def test_each_kind_is_marked_as_wireshark_marks_it(tmp_path: Path) -> None:
    path = tmp_path / "kinds.pcap"
    at = crafted(path)
    ours = marks_of(path)
    assert len(ours) == 23 and {stream for stream, _ in ours.values()} == {0}
    assert ours[1][1] == {"syn"} and ours[2][1] == {"syn"} and ours[3][1] == frozenset()
    assert ours[at["retransmission"]][1] == {"retransmission"}
    assert ours[at["fast"]][1] == {"retransmission", "fast_retransmission"}
    assert ours[at["spurious"]][1] == {"retransmission", "spurious_retransmission"}
    assert ours[at["out_of_order"]][1] == {"out_of_order"}
    assert ours[at["keep_alive"]][1] == {"keep_alive"}
    assert ours[at["zero_window"]][1] == {"zero_window"}
    assert ours[at["zero_window_probe"]][1] == {"zero_window_probe"}
    assert ours[at["fin"]][1] == {"fin"} and ours[at["rst"]][1] == {"rst"}
    assert ours == tshark_marks(path)


@pytest.mark.parametrize("seed", [11, 12])
def test_random_conversations_are_marked_as_wireshark_marks_them(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    convs = [
        random_conversation(rng, (f"10.0.{k}.1", 20000 + k), ("10.1.0.2", 80), T0 + rng.random())
        for k in range(60)
    ]
    path = write_fast(tmp_path / "random.pcap", sorted((s for c in convs for s in c.segs), key=lambda s: s.t))
    ours = marks_of(path)
    kinds = {label for _, labels in ours.values() for label in labels}
    assert kinds == set(LABELS), set(LABELS) - kinds  # every kind occurs, so every kind is compared
    assert ours == tshark_marks(path)


def test_marking_changes_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "kinds.pcap"
    crafted(path)
    assert analyze(read_tcp(path), mark=lambda p, s, labels: None) == analyze(read_tcp(path))
