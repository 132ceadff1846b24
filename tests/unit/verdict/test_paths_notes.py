"""What the verdict says of a NAT that forgot a flow: whether an end noticed depends on the port
it picked the flow up with, and an RST for the new tuple is told as the NAT's doing."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.pcap.reader import ACK, RST, read_tcp
from orchestrator.scenario.loader import load_scenario
from orchestrator.scenario.model import Scenario
from orchestrator.tcp.connection import FrameRef
from orchestrator.tcp.paths import NatJoin, RouterPaths, Seen
from orchestrator.tcp.rst_notes import STATELESS_RST
from orchestrator.verdict.paths import PathView, RouterFacts, _conntrack_facts
from tests.helpers.pcaps import T0, Seg, write_fast
from tests.helpers.recorded_runs import rejudge

CLIENT, SERVER, NAT_OUT = "10.77.58.20", "10.77.59.10", "10.77.59.2"
YAML = f"""
name: flush
duration: 15s
networks:
  inside: {{subnet: 10.77.58.0/24}}
  outside: {{subnet: 10.77.59.0/24}}
hosts:
  server:
    role: server
    networks: {{outside: {SERVER}}}
    agent: {{mode: echo}}
  nat:
    role: router
    networks: {{inside: 10.77.58.2, outside: {NAT_OUT}}}
    nat: {{masquerade: outside, random: true}}
  client:
    role: client
    networks: {{inside: {CLIENT}}}
    agent: {{mode: send, connect: "server:7000", every: 300ms}}
"""


def scenario(tmp_path: Path) -> Scenario:
    (tmp_path / "flush.yaml").write_text(YAML)
    return load_scenario(tmp_path / "flush.yaml")


def conntrack_log(new_port: int) -> str:
    flow = f"src={CLIENT} dst={SERVER} sport=53652 dport=7000"
    return "\n".join(
        [
            f"[{T0 + 0.5:.6f}]\t    [NEW] tcp 6 120 SYN_SENT {flow} [UNREPLIED] "
            f"src={SERVER} dst={NAT_OUT} sport=7000 dport=65293",
            f"[{T0 + 0.6:.6f}]\t [UPDATE] tcp 6 432000 ESTABLISHED {flow} "
            f"src={SERVER} dst={NAT_OUT} sport=7000 dport=65293 [ASSURED]",
            f"[{T0 + 2.5:.6f}]\t[DESTROY] tcp 6 431999 ESTABLISHED {flow} "
            f"src={SERVER} dst={NAT_OUT} sport=7000 dport=65293 [ASSURED]",
            f"[{T0 + 2.75:.6f}]\t    [NEW] tcp 6 300 ESTABLISHED {flow} [UNREPLIED] "
            f"src={SERVER} dst={NAT_OUT} sport=7000 dport={new_port}",
        ]
    )


def nat_note(tmp_path: Path, new_port: int, rst: FrameRef | None) -> str:
    log = tmp_path / "nat.conntrack.log"
    log.write_text(conntrack_log(new_port))
    facts = RouterFacts(RouterPaths())
    _conntrack_facts(facts, log, frozenset({(CLIENT, 53652), (SERVER, 7000)}))
    view = PathView(scenario(tmp_path), tmp_path, [], NatJoin([], None), {"nat": facts})
    (note,) = [n for n in view.notes(T0, rst) if n.startswith("nat: conntrack forgot")]
    return note


def test_the_same_port_and_no_rst_neither_end_noticed(tmp_path: Path) -> None:
    note = nat_note(tmp_path, 65293, None)
    assert "picked it up again at +2.750s as a new entry with the same port" in note
    assert note.endswith(": neither end noticed")
    # An RST after the lapse: something was noticed, so not 'neither end noticed'.
    assert "noticed" not in nat_note(tmp_path, 65293, FrameRef("server.pcap", 9, T0 + 2.8))


def test_another_port_the_server_meets_a_tuple_it_has_no_socket_for(tmp_path: Path) -> None:
    note = nat_note(tmp_path, 3459, FrameRef("server.pcap", 39, T0 + 2.753))
    assert "noticed" not in note
    assert f"with another port ({NAT_OUT}:3459 instead of {NAT_OUT}:65293;" in note
    assert note.endswith(
        "server's kernel got a 4-tuple it has no socket for, answered RST (server.pcap#39 +2.753s)"
    )


def test_the_servers_rst_for_the_new_tuple_is_the_nats_doing(tmp_path: Path) -> None:
    """The server's capture: data on the first NAT port, then an RST on the one the NAT took
    after forgetting the flow; its socket is the first tuple's."""
    flags = ACK | 0x08
    write_fast(
        tmp_path / "server.pcap",
        [
            Seg(T0 + 1, NAT_OUT, 65293, SERVER, 7000, flags, 101, 501, length=10),
            Seg(T0 + 2.75, NAT_OUT, 3459, SERVER, 7000, flags, 111, 501, length=10),
            Seg(T0 + 2.751, SERVER, 7000, NAT_OUT, 3459, RST, 501, 0),
            Seg(T0 + 3, SERVER, 7000, CLIENT, 53652, RST, 501, 0),  # to the client's own address
        ],
    )
    inside = write_fast(
        tmp_path / "nat.inside.pcap",
        [
            Seg(T0 + 1, CLIENT, 53652, SERVER, 7000, flags, 101, 501, length=10),
            Seg(T0 + 2.75, CLIENT, 53652, SERVER, 7000, flags, 111, 501, length=10),
        ],
    )
    sent = list(read_tcp(tmp_path / "server.pcap"))
    pairs = [
        (Seen("nat", "inside", a), Seen("nat", "outside", b))
        for a, b in zip(read_tcp(inside), sent[:2], strict=True)
    ]
    join = NatJoin(pairs, ((CLIENT, 53652), (SERVER, 7000)))
    view = PathView(scenario(tmp_path), tmp_path, [], join, canonical=((CLIENT, 53652), (SERVER, 7000)))
    rst = FrameRef("server.pcap", 3, T0 + 2.751)
    assert view.captured_ends(rst) == (f"{SERVER}:7000", f"{NAT_OUT}:3459")
    note = view.foreign_rst_note("server", f"{SERVER}:7000", f"{CLIENT}:53652", rst, T0)
    assert note is not None
    assert (
        f"is for {SERVER}:7000 -> {NAT_OUT}:3459, not its socket's tuple ({SERVER}:7000 -> {NAT_OUT}:65293)"
        in note
    )
    assert (
        "a NAT on the way gave the flow another port, and server's kernel had no socket for that one" in note
    )
    # An RST on the socket's own tuple is not the NAT's doing.
    own = FrameRef("server.pcap", 1, T0 + 1)
    assert view.foreign_rst_note("server", f"{SERVER}:7000", f"{CLIENT}:53652", own, T0) is None
    # A router that came back without its NAT rules forwards the flow untranslated.
    bare = FrameRef("server.pcap", 4, T0 + 3)
    untranslated = view.foreign_rst_note("server", f"{SERVER}:7000", f"{CLIENT}:53652", bare, T0)
    assert untranslated is not None
    assert f"is for {SERVER}:7000 -> {CLIENT}:53652" in untranslated
    assert "the router forwarded the flow without translating it" in untranslated


def test_rsts_a_router_forged_are_not_put_down_to_the_ends(tmp_path: Path) -> None:
    # A real run of lb_idle_reset (engine 20.10, kernel 6.18): the router forged an RST toward
    # each end; neither end's kernel sent one (client.pcap and server.pcap hold none leaving).
    v = rejudge("lb_idle_reset", tmp_path)
    assert v.passed, [(c.name, c.observed) for c in v.checks if not c.passed]
    notes = "\n".join(v.notes)
    assert "lb forged 2 segments into the connection" in notes
    # Not the server's RST for an untranslated tuple, nor either end's own RST, nor the
    # captures' guesses at the state of a socket that never sent it.
    assert "server's RST" not in notes and STATELESS_RST not in notes
    assert "client sent an RST" not in notes and "server sent an RST" not in notes
    for host, capture in (("client", "lb.inside.pcap#20"), ("server", "lb.outside.pcap#20")):
        finding = [n for n in v.notes if f"lb forged an RST toward {host} at +" in n]
        assert len(finding) == 1 and f"{host} itself sent no RST" in finding[0], v.notes
        assert capture in finding[0] and f"{host}.sockets.jsonl:" in finding[0]


def test_a_flow_is_forgotten_when_its_entry_times_out_not_when_conntrack_destroys_it(
    tmp_path: Path,
) -> None:
    # A real run of nat_idle_timeout: the entry (10 s) timed out 10 s after the flow's last
    # packet, at +10.185 s; conntrack destroyed it only at +15.202 s, when the client's late
    # segment came (nat.conntrack.log). The verdict said "forgot the flow at +15.202s".
    v = rejudge("nat_idle_timeout", tmp_path)
    assert v.passed, [(c.name, c.observed) for c in v.checks if not c.passed]
    (note,) = [n for n in v.notes if n.startswith("nat: conntrack")]
    assert note == (
        "nat: conntrack's entry for the flow timed out at +10.185s, its established timeout (10 s) "
        "after the flow's last packet through it (+0.185s): forgotten from then on; conntrack "
        "destroyed the entry only at +15.202s (DESTROY), when it next looked at it"
    )
    routers = v.to_json()["paths"]["routers"]
    assert routers["nat"]["timed_out_at"] == pytest.approx(v.t0 + 10.185, abs=0.001)
    # lb_idle_reset's supervisor lists the table every 250 ms: there the DESTROY is the expiry.
    lb = rejudge("lb_idle_reset", tmp_path)
    assert "lb: conntrack forgot the flow at +10.340s (DESTROY)" in lb.notes


def test_an_rst_forged_in_a_hosts_name_is_not_its_kernels(tmp_path: Path) -> None:
    # A real run of rst_injection: the router forged two RSTs toward the server bearing the
    # client's address (in-window, then exact); the verdict said "DIFFERS: client sent an RST
    # at +2.798s, yet its kernel still listed the socket ESTAB ... (e.g. a firewall's REJECT)".
    v = rejudge("rst_injection", tmp_path)
    assert v.passed, [(c.name, c.observed) for c in v.checks if not c.passed]
    assert "path forged 2 segments into the connection" in "\n".join(v.notes)
    assert not [n for n in v.notes if "client sent an RST" in n], v.notes
    # The server's own RST (its kernel had no socket left) is still told as its own.
    assert [n for n in v.notes if "agrees: server sent an RST at +5.201s" in n]


def _a_second_flow_dies_too(run_dir: Path) -> None:
    """The recorded NAT's inside capture with a second connection's copy of every segment the
    client sent after the idle timeout (another source port): 6 more died in the router."""
    from scapy.all import TCP, rdpcap, wrpcap  # noqa: PLC0415 - scapy only for this edit

    inside = run_dir / "nat.inside.pcap"
    packets = list(rdpcap(str(inside)))
    late = [p for p in packets if TCP in p and p[TCP].sport == 35100 and float(p.time) > 1796313938.8]
    copies = []
    for p in late:
        q = p.copy()
        q[TCP].sport = 35101
        del q[TCP].chksum
        q.time = p.time + 0.001
        copies.append(q)
    wrpcap(str(inside), sorted(packets + copies, key=lambda p: float(p.time)))


def test_a_routers_count_says_whose_segments_it_counts(tmp_path: Path) -> None:
    """With other connections through the router, `middlebox.nat.died` counts the connection
    the expectations are about, and says so beside the count of all."""
    v = rejudge("nat_idle_timeout", tmp_path, _a_second_flow_dies_too)
    (died,) = [c for c in v.checks if c.name == "middlebox.nat.died"]
    assert died.passed
    assert died.observed == (
        "6 (of 10.77.10.20:35100 -> 10.77.11.10:7000's segments, the connection the expectations are "
        "about; 12 of all the connections through nat)"
    )
    assert any("6 of the connection's segments came in" in n and "; 12 of all" in n for n in v.notes)
    nat = v.to_json()["paths"]["routers"]["nat"]
    assert (nat["died"], nat["died_all"]) == (6, 12)


def test_a_routers_count_with_one_connection_reads_as_before(tmp_path: Path) -> None:
    v = rejudge("nat_idle_timeout", tmp_path)
    (died,) = [c for c in v.checks if c.name == "middlebox.nat.died"]
    assert died.observed == "6"
