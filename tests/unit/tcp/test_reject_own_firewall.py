"""An RST in a side's name that its own socket did not send, and that reset the peer: recorded on
the engine (kernel 6.18). The client's own firewall (iptables REJECT with tcp-reset, set 1 s into
an echo exchange) answered the server's echo with an RST at exactly the server's next expected
number: the server's app got ECONNRESET at once, and its kernel forgot the socket. The client's
socket never learnt (the firewall dropped the server's echo and everything after): it
retransmitted its last segment 7 times, each answered by the server's RST of no socket, which
the firewall dropped too.

Before, the client's RST was left out of the close as "not that socket's" (its side went on
sending), so the close read "reset by server", the server's RST explained as the server having
lost the connection by itself, or a NAT."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.pcap.reader import RST, read_tcp
from orchestrator.tcp.analysis import analyze, analyze_file

RECORDED = Path(__file__).parent / "recorded" / "reject_own_firewall"


@pytest.mark.parametrize("name", ["client.pcap", "server.pcap"])
def test_the_rst_that_reset_the_peer_decides_the_close(name: str) -> None:
    (conn,) = analyze_file(RECORDED / name).connections
    assert (conn.close, conn.rst_from) == ("rst", "client")
    assert conn.retransmissions.client == 7
    (note,) = [n for n in conn.notes if n.startswith("the RST from client")]
    assert "was not client's socket's: client went on sending after it" in note
    assert "server took it: it sent nothing after it but RSTs of no socket" in note
    assert note.endswith(
        "which client never took: it went on sending (its socket still open: ETIMEDOUT at "
        "its RTO budget, if nothing else reaches it)"
    )
    assert not [n for n in conn.notes if "no longer had this connection" in n]


def test_without_the_peers_answers_the_rst_is_still_not_the_close() -> None:
    """The same packets without the server's RSTs: nothing shows the server took it."""
    packets = list(read_tcp(RECORDED / "server.pcap"))
    server = next(p.src for p in packets if p.sport == 7000)
    (conn,) = analyze([p for p in packets if not (p.src == server and p.flags & RST)])
    assert conn.close == "none" and conn.rst_from is None
    (note,) = [n for n in conn.notes if n.startswith("the RST from client")]
    assert "did not end client's side" in note and "took it" not in note


@pytest.mark.parametrize("name", ["client.pcap", "server.pcap"])
def test_the_retransmissions_came_after_the_ack_and_met_rsts(name: str) -> None:
    """The server acknowledged the client's segment (its echo) before the client's 7 copies of it,
    and answered each with an RST of no socket: nothing acknowledged it after them."""
    (conn,) = analyze_file(RECORDED / name).connections
    (note,) = [n for n in conn.notes if n.startswith("client retransmitted")]
    assert "server had acknowledged the segment before it came again" in note
    assert note.endswith("or the network duplicated it), the last answered by RST from server")
