"""A client that "reboots" and connects again from the same port, recorded in netns (kernel
6.18; `a*.pcap` the client's capture, `b*.pcap` the server's; two runs). The client's socket was
aborted inside a cut (its RST lost), so the server still held the connection. The new SYN got a
challenge ACK for the old connection (RFC 5961 4), the client (SYN_SENT) answered it with an RST
whose seq is that ACK, the server's app got ECONNRESET on the old socket at that moment, and the
client re-sent its SYN 9 ms later (TCP_TIMEOUT_MIN): a new connection closed by FINs. Wireshark
puts the challenge ACK and the RST in the new tcp.stream; that RST ends the old one."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "reboot_reconnect"


@pytest.mark.parametrize("name", ["a1.pcap", "b1.pcap", "a2.pcap", "b2.pcap"])
def test_the_new_connection_is_not_reset_by_the_rst_for_the_old(name: str) -> None:
    old, new = analyze_file(RECORDED / name).connections
    assert new.close == "fin" and new.rst_from is None and new.close_packets == 3
    assert len(new.rsts.client) == 1  # still counted, as tshark counts it, in the new stream
    assert any("challenge ACK" in n and "not this one" in n for n in new.notes)
    assert not any(n.startswith("reset by") for n in new.notes)
    assert old.close == "rst" and old.rst_from == "client"


@pytest.mark.parametrize("name", ["b1.pcap", "b2.pcap"])
def test_the_old_connection_at_the_survivor_is_reset_by_it(name: str) -> None:
    """The server's capture has no RST in the old stream: the client's abort was lost."""
    old, _ = analyze_file(RECORDED / name).connections
    assert not old.rsts.client and not old.rsts.server
    assert not any(n.startswith("no FIN or RST") for n in old.notes)
    (note,) = [n for n in old.notes if n.startswith("reset by client")]
    assert "challenge ACK" in note and "ECONNRESET" in note
