"""A router's captures: forwarded, died and forged segments, the NAT join, challenge ACKs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orchestrator.pcap.reader import ACK, RST, read_tcp
from orchestrator.tcp.analysis import analyze
from orchestrator.tcp.paths import NatJoin, RouterCapture, challenge_acks, trace_router
from tests.helpers.pcaps import T0, Seg, write_fast

CLIENT, SERVER, INSIDE, OUTSIDE = "10.1.0.20", "10.2.0.10", "10.1.0.2", "10.2.0.2"
CPORT, NPORT = 40000, 40000  # masquerade keeps the port


def nat_captures(tmp_path: Path, drop_after: float | None = None, forge: bool = False) -> list[RouterCapture]:
    """A handshake and data through a masquerading router; from `drop_after` on the client's
    segments come in and never go out; `forge`: the router sends an RST to each end."""
    inside: list[Seg] = []
    outside: list[Seg] = []

    def up(t: float, flags: int, seq: int, ack: int, length: int = 0) -> None:
        inside.append(Seg(t, CLIENT, CPORT, SERVER, 7000, flags, seq, ack, length=length))
        if drop_after is None or t < drop_after:
            outside.append(Seg(t + 0.00002, OUTSIDE, NPORT, SERVER, 7000, flags, seq, ack, length=length))

    def down(t: float, flags: int, seq: int, ack: int, length: int = 0) -> None:
        outside.append(Seg(t, SERVER, 7000, OUTSIDE, NPORT, flags, seq, ack, length=length))
        inside.append(Seg(t + 0.00002, SERVER, 7000, CLIENT, CPORT, flags, seq, ack, length=length))

    up(T0, 0x02, 100, 0)
    down(T0 + 0.001, 0x12, 500, 101)
    up(T0 + 0.002, ACK, 101, 501)
    up(T0 + 1, ACK | 0x08, 101, 501, 10)
    down(T0 + 1.001, ACK, 501, 111)
    for i in range(3):
        up(T0 + 20 + i, ACK | 0x08, 111, 501, 10)
    if forge:
        inside.append(Seg(T0 + 30, SERVER, 7000, CLIENT, CPORT, RST, 501, 0))
        outside.append(Seg(T0 + 30, OUTSIDE, NPORT, SERVER, 7000, RST, 121, 0))
    write_fast(tmp_path / "nat.inside.pcap", sorted(inside, key=lambda s: s.t))
    write_fast(tmp_path / "nat.outside.pcap", sorted(outside, key=lambda s: s.t))
    return [
        RouterCapture("nat", "inside", tmp_path / "nat.inside.pcap", frozenset({CLIENT})),
        RouterCapture("nat", "outside", tmp_path / "nat.outside.pcap", frozenset({SERVER})),
    ]


def test_forwarded_segments_are_paired_and_the_rest_died(tmp_path: Path) -> None:
    paths = trace_router(nat_captures(tmp_path, drop_after=T0 + 10))
    assert len(paths.forwarded) == 5
    assert [(s.network, s.packet.seq, s.packet.payload_len) for s in paths.died] == [("inside", 111, 10)] * 3
    assert paths.forged == []


def test_without_drops_nothing_died(tmp_path: Path) -> None:
    paths = trace_router(nat_captures(tmp_path))
    assert (len(paths.forwarded), paths.died, paths.forged) == (8, [], [])


def test_what_left_without_coming_in_was_forged_by_the_router(tmp_path: Path) -> None:
    paths = trace_router(nat_captures(tmp_path, forge=True))
    assert sorted((s.network, s.packet.dst) for s in paths.forged) == [
        ("inside", CLIENT),
        ("outside", SERVER),
    ]


def test_the_nat_join_puts_the_servers_side_in_the_clients_terms(tmp_path: Path) -> None:
    paths = trace_router(nat_captures(tmp_path, forge=True))
    join = NatJoin(paths.forwarded, ((CLIENT, CPORT), (SERVER, 7000)))
    assert join.joined
    server_side = read_tcp(tmp_path / "nat.outside.pcap")
    moved = [join.translate(p) for p in server_side]
    assert {(p.src, p.dst) for p in moved} == {(CLIENT, SERVER), (SERVER, CLIENT)}
    # One connection, not two halves: the outside capture alone, joined, has a full handshake.
    (conn,) = analyze(join.translate_all(server_side))
    assert (conn.client, conn.server, conn.handshake) == (f"{CLIENT}:{CPORT}", f"{SERVER}:7000", "complete")
    # And the server's kernel names it by the router's address, as ss shows it.
    assert join.seen_from({SERVER}, ((SERVER, 7000), (CLIENT, CPORT))) == ((SERVER, 7000), (OUTSIDE, NPORT))
    assert join.seen_from({CLIENT}, ((CLIENT, CPORT), (SERVER, 7000)), client=True) == (
        (CLIENT, CPORT),
        (SERVER, 7000),
    )


def test_without_nat_there_is_nothing_to_join(tmp_path: Path) -> None:
    syn = Seg(T0, CLIENT, CPORT, SERVER, 7000, 0x02, 1, 0)
    synack = Seg(T0 + 0.001, SERVER, 7000, CLIENT, CPORT, 0x12, 9, 2)
    later = dataclasses.replace  # the copy a router sends on is the later one
    write_fast(tmp_path / "r.a.pcap", [syn, later(synack, t=synack.t + 0.00001)])
    write_fast(tmp_path / "r.b.pcap", [later(syn, t=syn.t + 0.00001), synack])
    caps = [
        RouterCapture("r", "a", tmp_path / "r.a.pcap", frozenset({CLIENT})),
        RouterCapture("r", "b", tmp_path / "r.b.pcap", frozenset({SERVER})),
    ]
    paths = trace_router(caps)
    join = NatJoin(paths.forwarded, ((CLIENT, CPORT), (SERVER, 7000)))
    assert len(paths.forwarded) == 2 and not join.joined
    p = read_tcp(tmp_path / "r.b.pcap")
    assert [join.translate(x) for x in p] == list(read_tcp(tmp_path / "r.b.pcap"))


def test_a_challenge_ack_follows_an_rst_that_did_not_reset(tmp_path: Path) -> None:
    segs = [
        Seg(T0, CLIENT, CPORT, SERVER, 7000, ACK | 0x08, 1, 1, length=10),
        Seg(T0 + 1, CLIENT, CPORT, SERVER, 7000, RST, 1011, 0),  # in the window: challenged
        Seg(T0 + 1.0001, SERVER, 7000, CLIENT, CPORT, ACK, 1, 11),
        Seg(T0 + 2, CLIENT, CPORT, SERVER, 7000, ACK | 0x08, 11, 1, length=10),
        Seg(T0 + 2.0001, SERVER, 7000, CLIENT, CPORT, ACK, 1, 21),  # an ordinary ACK: not counted
        Seg(T0 + 3, CLIENT, CPORT, SERVER, 7000, RST, 21, 0),  # exact: reset, nothing answers
    ]
    write_fast(tmp_path / "server.pcap", segs)
    found = challenge_acks(read_tcp(tmp_path / "server.pcap"), {SERVER}, RST, ACK)
    assert [p.frame for p in found] == [3]


def test_several_clients_behind_one_nat_are_each_joined_in_their_own_terms(tmp_path: Path) -> None:
    # Measured (tcpscen run, two clients behind a masquerading router): only the judged client's
    # connection was joined; the other's two halves were two connections, and the server's
    # kernel was said never to have listed it.
    other, oport = "10.1.0.21", 40001
    inside: list[Seg] = []
    outside: list[Seg] = []
    for client, port, t in ((CLIENT, CPORT, 0.0), (other, oport, 0.5)):
        for dt, up, flags, seq, ack in (
            (0, True, 0x02, 100, 0),
            (0.001, False, 0x12, 500, 101),
            (0.002, True, ACK, 101, 501),
        ):
            when = T0 + t + dt
            if up:
                inside.append(Seg(when, client, port, SERVER, 7000, flags, seq, ack))
                outside.append(Seg(when + 0.00002, OUTSIDE, port, SERVER, 7000, flags, seq, ack))
            else:
                outside.append(Seg(when, SERVER, 7000, OUTSIDE, port, flags, seq, ack))
                inside.append(Seg(when + 0.00002, SERVER, 7000, client, port, flags, seq, ack))
    write_fast(tmp_path / "nat.inside.pcap", sorted(inside, key=lambda s: s.t))
    write_fast(tmp_path / "nat.outside.pcap", sorted(outside, key=lambda s: s.t))
    caps = [
        RouterCapture("nat", "inside", tmp_path / "nat.inside.pcap", frozenset({CLIENT, other})),
        RouterCapture("nat", "outside", tmp_path / "nat.outside.pcap", frozenset({SERVER})),
    ]
    paths = trace_router(caps)
    canonical = ((CLIENT, CPORT), (SERVER, 7000))
    server_side = read_tcp(tmp_path / "nat.outside.pcap")
    # Without the clients' addresses, as before: only the judged connection is joined.
    alone = NatJoin(paths.forwarded, canonical)
    assert len(analyze(alone.translate_all(server_side))) == 2
    assert alone.joined and alone.seen_from({SERVER}, ((SERVER, 7000), (other, oport)))[1][0] != OUTSIDE
    join = NatJoin(paths.forwarded, canonical, frozenset({CLIENT, other}))
    conns = analyze(join.translate_all(server_side))
    assert sorted(c.client for c in conns) == [f"{CLIENT}:{CPORT}", f"{other}:{oport}"]
    assert all(c.handshake == "complete" for c in conns)
    # Each connection as the server's kernel names it (ss): by the router's address and port.
    assert join.seen_from({SERVER}, ((SERVER, 7000), (other, oport))) == ((SERVER, 7000), (OUTSIDE, oport))
    assert join.seen_from({SERVER}, ((SERVER, 7000), (CLIENT, CPORT))) == ((SERVER, 7000), (OUTSIDE, CPORT))
    # The judged connection's notes name its own two tuples only.
    assert len(join.judged_tuples) == 2 and join.joined and join.joins_any
