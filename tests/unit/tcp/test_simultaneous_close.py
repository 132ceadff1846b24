"""Closes recorded in rv3- namespaces (25 ms each way through a userspace forwarder). In
`a.pcap` (the client's capture) and `b.pcap` (the server's), both sides called close() at the
same moment: each FIN left before the other's arrived, so neither acknowledges the other, and
both sockets went through CLOSING to TIME_WAIT (TcpExtTW 1 on each host; the note says only
that both end in TIME_WAIT, which is also so when the first FIN was lost instead). Each capture shows
its own host's FIN first. `half_close.pcap`: the client's shutdown(SHUT_WR), the server's
three replies, then its FIN: an ordinary 4-packet close."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "simultaneous_close"


@pytest.mark.parametrize(("name", "first"), [("a.pcap", "client"), ("b.pcap", "server")])
def test_crossed_fins_are_a_simultaneous_close(name: str, first: str) -> None:
    (conn,) = analyze_file(RECORDED / name).connections
    assert conn.close == "fin" and conn.close_packets == 4
    assert conn.initiator == first  # whose FIN this capture shows first
    (note,) = [n for n in conn.notes if "close" in n]
    assert note.startswith("the FINs crossed") and "simultaneous close" in note
    assert "acknowledged first" not in note


def test_a_half_close_answered_later_is_not_crossed() -> None:
    (conn,) = analyze_file(RECORDED / "half_close.pcap").connections
    assert conn.close == "fin" and conn.close_packets == 4 and conn.initiator == "client"
    assert "client closed first; server acknowledged first, then sent its FIN: 4-packet close" in conn.notes
