"""A NAT that forgot an idle flow, recorded in netns (kernel 6.18): `a` behind masquerade in `w`
(nf_conntrack_tcp_timeout_established=5, tcp_loose=0), `b` the server; `*_a` the client's capture,
`*_b` the server's. The truth from the apps' errno and `ss` in both namespaces:

* `reject_*`: `ct state invalid reject with tcp reset` in w's forward chain. The client sends
  8 s after the handshake; w forges an RST with the server's address (TTL 64, the server's own
  segments arrive with 63): the client gets ECONNRESET at once, the server stays ESTABLISHED and
  its capture shows nothing. When the server's recv timed out (20 s) its FIN, addressed to the
  NAT, met w's own stack: an RST with the client's address, though the client sent none.
* `server_keepalive_*`: `ct state invalid drop`; the server's keep-alive probe after 8 s idle
  meets w's own stack (the address is w's): the server gets ECONNRESET, the client stays
  ESTABLISHED and its capture has nothing after the handshake.
* `remap_*`: `masquerade random` and the default tcp_loose=1: the client's data after 8 s idle
  (`remap_keepalive_*`: its keep-alive probe after 7 s, conntrack timeout 4 s) reached the server
  from a new port, continuing the old numbers; the server's kernel reset that port (the client
  got ECONNRESET) and kept the old connection ESTABLISHED. The two connections are not linked:
  they are different 4-tuples, which a shared analysis deals to different processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import ConnectionSummary

RECORDED = Path(__file__).parent / "recorded" / "nat_forgot"
NAT = "a NAT or stateful firewall on the path that forgot the flow"


def _conn(name: str) -> ConnectionSummary:
    (conn,) = analyze_file(RECORDED / name).connections
    return conn


def _note(conn: ConnectionSummary, start: str) -> str:
    (note,) = [n for n in conn.notes if n.startswith(start)]
    return note


@pytest.mark.parametrize(
    ("name", "sender", "quiet"),
    [
        ("reject_a.pcap", "server", "8"),
        ("reject_b.pcap", "client", "20.036"),
        ("server_keepalive_b.pcap", "client", "8.11"),
    ],
)
def test_a_forged_rst_names_the_nat_among_its_causes(name: str, sender: str, quiet: str) -> None:
    conn = _conn(name)
    assert (conn.close, conn.rst_from) == ("rst", sender)
    note = _note(conn, "the RST has no ACK flag")
    assert f"{sender} no longer had this connection" in note  # the host's loss stays a cause
    assert f"as {sender} sent no FIN or RST before it here, not {sender}'s socket but a firewall" in note
    assert f"or {NAT} (its conntrack entry expired" in note
    assert f"such an RST is not in a capture taken on {sender}'s host" in note
    assert f"{sender} had sent nothing for {quiet} s" in note


def test_the_other_side_shows_no_rst() -> None:
    assert _conn("server_keepalive_a.pcap").close == "none"


@pytest.mark.parametrize("name", ["remap_b.pcap", "remap_keepalive_b.pcap"])
def test_a_connection_a_nat_moved_to_a_new_port_keeps_the_nat_among_its_rsts_causes(name: str) -> None:
    # Not linked to the old connection: the two are different 4-tuples, which a shared analysis
    # (several processes) deals to different processes, so a link would depend on -j.
    first, second = analyze_file(RECORDED / name).connections
    assert (first.handshake, second.handshake) == ("complete", "missing")
    note = _note(second, "the RST has no ACK flag")
    assert NAT in note and "answering a new port the NAT gave the flow" in note


# The server's own firewall (recorded/reject_own_server, see its README): the same RST shape as a
# NAT's forged one, but it leaves the server, in the server's own capture (b.pcap) too.
OWN = Path(__file__).parent / "recorded" / "reject_own_server"


@pytest.mark.parametrize("name", ["a.pcap", "b.pcap"])
def test_the_hosts_own_firewall_is_a_cause_and_no_capture_is_contradicted(name: str) -> None:
    (conn,) = analyze_file(OWN / name).connections
    assert (conn.close, conn.rst_from) == ("rst", "server")
    note = _note(conn, "the RST has no ACK flag")
    assert (
        "server's own (a REJECT with tcp-reset in server's namespace, iptables or nftables: the RST "
        "leaves server, in server's own capture too)"
    ) in note
    # b.pcap is the server's own capture and holds the RST: no cause may say its capture has none
    assert "shows none" not in note
    assert "such an RST is not in a capture taken on server's host" in note  # said of the NAT's only
    assert NAT in note


def test_a_rebooted_hosts_own_capture_is_not_contradicted() -> None:
    """The server's capture after its power-on (tcpscen run): its new kernel's RST for the
    client's segment leaves it. The note may offer a path's NAT, not say this capture has none."""
    boot = Path(__file__).parents[1] / "verdict" / "recorded" / "reboot_rst" / "server.boot2.pcap"
    (conn,) = analyze_file(boot).connections
    note = _note(conn, "the RST has no ACK flag")
    assert "server no longer had this connection (socket closed, or the host rebooted)" in note
    assert "shows none" not in note


def test_after_its_fin_the_rst_is_the_orphans_and_no_firewall_is_offered() -> None:
    """An RST without ACK after data reached a side that had sent its FIN: its socket's (the
    orphan's), Linux's own answer; the firewalls' clause is not said."""
    done = Path(__file__).parent / "recorded" / "close_reset" / "data_after_close_b.pcap"
    notes = " ".join(n for c in analyze_file(done).connections for n in c.notes)
    assert "after data server sent once client had sent its FIN" in notes
    assert "a REJECT with tcp-reset" not in notes and NAT not in notes
