"""Ladder rows: one per segment as its sender sent it, numbered as Wireshark numbers them, marked
by the analysis, repeated exchanges collapsed into "xN", lost sends found, long captures bounded."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from orchestrator.pcap.reader import TcpPacket, read_tcp
from orchestrator.tcp import analysis
from orchestrator.tcp import ladder as ladder_mod
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.ladder import Ladder, Mark, build_ladders, capture_ladders, run_ladders
from tests.helpers.pcaps import T0, Conv, tshark, tshark_fields, write_fast


def one(path: Path) -> Ladder:
    ladders = capture_ladders(path)
    assert len(ladders) == 1
    return ladders[0]


def test_rows_are_the_segments_with_wiresharks_numbers(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 100)
    c.data("s", 50)
    c.ack("c")
    c.fin("c")
    c.send("s", "FA")
    c.ack("c")
    lad = one(c.write(tmp_path / "a.pcap", link="sll2"))
    assert [(r.side, r.flags) for r in lad.rows] == [
        ("client", "SYN"),
        ("server", "SYN, ACK"),
        ("client", "ACK"),
        ("client", "PSH, ACK"),
        ("server", "PSH, ACK"),
        ("client", "ACK"),
        ("client", "FIN, ACK"),
        ("server", "FIN, ACK"),
        ("client", "ACK"),
    ]
    assert lad.client == "10.0.0.1:40000" and lad.server == "10.0.0.2:80" and lad.packets == 9
    assert all(r.count == 1 and r.delivered is None for r in lad.rows)
    if not tshark():
        pytest.skip("tshark is not installed: cannot compare with Wireshark")
    theirs = tshark_fields(tmp_path / "a.pcap", ["tcp.seq", "tcp.ack", "tcp.len", "tcp.flags.ack"])
    ours = [[str(r.seq), str(r.ack if r.ack is not None else 0), str(r.length)] for r in lad.rows]
    assert ours == [row[:3] for row in theirs]


def test_relative_numbers_without_a_handshake_match_wireshark(tmp_path: Path) -> None:
    c = Conv()
    c.data("c", 100)
    c.data("s", 50)
    c.ack("c")
    lad = one(c.write(tmp_path / "a.pcap"))
    assert [(r.seq, r.ack, r.length) for r in lad.rows] == [(1, 1, 100), (1, 101, 50), (101, 51, 0)]


def test_marks_come_from_the_analysis_and_never_collapse(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    first = c.data("c", 100)
    for gap in (0.2, 0.4, 0.8, 1.6):
        c.retransmit("c", first, dt=gap)
    c.ack("s", dt=0.01)
    for _ in range(3):
        c.keepalive("c", dt=2.0)
        c.ack("s", dt=0.001)
    c.rst("c")
    lad = one(c.write(tmp_path / "a.pcap"))
    retx = [r for r in lad.rows if "retransmission" in r.labels]
    assert [r.frame.frame for r in retx] == [5, 6, 7, 8]
    assert all(r.count == 1 for r in retx)  # the same shape four times, but each is evidence
    probes = [r for r in lad.rows if "keep_alive" in r.labels]
    assert len(probes) == 3 and all(r.seq == 100 and r.length == 0 for r in probes)
    assert lad.rows[-1].flags == "RST, ACK" and "rst" in lad.rows[-1].labels
    assert "syn" in lad.rows[0].labels


def test_a_run_of_identical_sends_becomes_one_row(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    for _ in range(10):
        c.data("c", 100, dt=0.01)
    c.ack("s")
    lad = one(c.write(tmp_path / "a.pcap"))
    assert len(lad.rows) == 3 + 1 + 1
    group = lad.rows[3]
    assert (group.count, group.period, group.group_start) == (10, 1, True)
    assert (group.seq, group.last_seq) == (1, 901)
    assert group.last_time == pytest.approx(group.time + 0.09)
    assert lad.rows[-1].ack == 1001 and lad.rows[-1].count == 1


def test_a_repeated_exchange_collapses_as_a_whole(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    for _ in range(8):
        c.data("c", 64, dt=0.2)
        c.data("s", 64, dt=0.001)
        c.ack("c", dt=0.001)
    lad = one(c.write(tmp_path / "a.pcap"))
    # The handshake's last ACK has the shape of the exchange's ACK: the cycle is read from there.
    assert [(r.side, r.flags, r.count, r.period, r.group_start) for r in lad.rows] == [
        ("client", "SYN", 1, 1, True),
        ("server", "SYN, ACK", 1, 1, True),
        ("client", "ACK", 8, 3, True),
        ("client", "PSH, ACK", 8, 3, False),
        ("server", "PSH, ACK", 8, 3, False),
        ("client", "ACK", 1, 1, True),
    ]
    assert sum(r.count for r in lad.rows) == lad.packets == 27
    assert lad.rows[3].seq == 1 and lad.rows[3].last_seq == 1 + 7 * 64


def test_two_repeats_are_drawn_as_they_are(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    for _ in range(2):
        c.data("c", 64, dt=0.2)
    lad = one(c.write(tmp_path / "a.pcap"))
    assert [r.count for r in lad.rows] == [1] * 5


def test_a_fault_or_event_splits_a_group(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    for _ in range(8):
        c.data("c", 100, dt=0.1)
    path = c.write(tmp_path / "a.pcap")
    middle = c.segs[6].t + 0.05
    (lad,) = build_ladders(iter(read_tcp(path)), None, [middle])
    assert [r.count for r in lad.rows if r.count > 1] == [4, 4]
    assert [r.phase for r in lad.rows] == [0, 0, 0, 0, 1]


def test_sends_missing_from_the_receivers_capture_are_marked(tmp_path: Path) -> None:
    c = Conv(client=("10.0.0.1", 40000), server=("10.0.0.2", 80), t=T0)
    c.handshake()
    lost = c.data("c", 100)
    c.retransmit("c", lost, dt=0.2)  # the retransmission gets through
    c.ack("s", dt=0.0005)
    c.data("c", 100, dt=0.1)  # lost for good
    # Each segment reaches the other side 100 us later, except frames 4 and 7.
    received = [s for i, s in enumerate(c.segs, 1) if i not in (4, 7)]
    arrivals = [type(s)(s.t + 0.0001, *list(vars(s).values())[1:]) for s in received]
    client_pcap = write_fast(
        tmp_path / "client.pcap",
        [s for s in c.segs if s.src == "10.0.0.1"] + [a for a in arrivals if a.dst == "10.0.0.1"],
    )
    server_pcap = write_fast(
        tmp_path / "server.pcap",
        sorted(
            [s for s in c.segs if s.src == "10.0.0.2"] + [a for a in arrivals if a.dst == "10.0.0.2"],
            key=lambda s: s.t,
        ),
    )
    (lad,) = run_ladders([(client_pcap, "10.0.0.1"), (server_pcap, "10.0.0.2")])
    sends = [(r.side, r.length, r.delivered, "retransmission" in r.labels) for r in lad.rows]
    assert sends == [
        ("client", 0, True, False),
        ("server", 0, True, False),
        ("client", 0, True, False),
        ("client", 100, False, False),  # the original: only the retransmission arrived
        ("client", 100, True, True),
        ("server", 0, True, False),
        ("client", 100, False, False),
    ]


def test_a_long_connection_keeps_its_head_and_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ladder_mod, "HEAD_ROWS", 20)
    monkeypatch.setattr(ladder_mod, "TAIL_ROWS", 40)
    monkeypatch.setattr(ladder_mod, "MAX_POINTS", 50)
    c = Conv()
    c.handshake()
    for i in range(300):  # every length differs: nothing to collapse
        c.data("c", 1 + i, dt=0.01)
    c.rst("c")
    lad = one(write_fast(tmp_path / "a.pcap", c.segs))
    assert lad.elision is not None and lad.elision.after_row == 19
    assert len(lad.rows) <= 20 + 40 + 40 // 4
    assert sum(r.count for r in lad.rows) + lad.elision.packets == lad.packets == 304
    assert lad.rows[-1].flags == "RST, ACK"  # the end of the story is kept
    assert lad.thinned and len(lad.points) <= 51
    assert any("rst" in p.labels for p in lad.points) and any("syn" in p.labels for p in lad.points)


def test_packets_the_hook_leaves_unmarked_stay_with_their_connection(tmp_path: Path) -> None:
    """However sparingly the analysis calls the hook, every segment lands in its connection."""
    c = Conv()  # no handshake: nothing is marked until the retransmission
    c.data("c", 100)
    c.data("s", 50)
    first = c.data("c", 100)
    c.retransmit("c", first, dt=0.3)
    c.ack("s")
    path = c.write(tmp_path / "a.pcap")

    def sparse(packets: Iterable[TcpPacket], *, mark: Mark) -> list[ConnectionSummary]:
        def only_marked(p: TcpPacket, stream: int, labels: frozenset[str]) -> None:
            if labels:
                mark(p, stream, labels)

        return analysis.analyze(packets, mark=only_marked)

    (lad,) = capture_ladders(path, sparse)
    assert lad.packets == 5
    assert [sorted(r.labels) for r in lad.rows] == [[], [], [], ["retransmission"], []]


def test_marks_are_the_senders_own_view_in_a_one_way_blackhole(tmp_path: Path) -> None:
    """The server ACKs the client's data, but its ACK never reaches the client: the client's resend
    is a plain retransmission in its own capture (the merged stream would call it spurious)."""
    c = Conv(client=("10.0.0.1", 40000), server=("10.0.0.2", 80), t=T0)
    c.handshake()
    sent = c.data("c", 100)
    c.ack("s", dt=0.0005)  # blackholed on the way back
    c.retransmit("c", sent, dt=0.4)
    ack_frame = len(c.segs) - 1  # 1-based number of the server's lost ACK
    client_segs = [s for i, s in enumerate(c.segs, 1) if i != ack_frame]
    client_pcap = write_fast(tmp_path / "client.pcap", client_segs)
    server_pcap = write_fast(tmp_path / "server.pcap", c.segs)
    (lad,) = run_ladders([(client_pcap, "10.0.0.1"), (server_pcap, "10.0.0.2")])
    resend = lad.rows[-1] if lad.rows[-1].side == "client" else lad.rows[-2]
    assert "retransmission" in resend.labels and "spurious_retransmission" not in resend.labels
    merged = build_ladders(read_tcp(server_pcap))  # both sides' sends as they left: the ACK existed
    assert any("spurious_retransmission" in r.labels for r in merged[0].rows)
