"""An RST injected from the client's namespace (scapy, no socket of its own) into an established
connection, recorded in netns (kernel 6.18): `inwindow_*` with seq = the client's next + 1000
(the server answered with a challenge ACK, RFC 5961), `outwindow_b` with seq 10 MB ahead (the
server dropped it silently). Both apps went on: more data both ways, then FINs; no error. The
client's later data counts as retransmitted (the RST moved Wireshark's next expected seq);
that is Wireshark's count, kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "rst_ignored"
NAMES = ["inwindow_a.pcap", "inwindow_b.pcap", "outwindow_b.pcap"]


@pytest.mark.parametrize("name", NAMES)
def test_an_rst_its_own_side_outlived_closes_nothing(name: str) -> None:
    (conn,) = analyze_file(RECORDED / name).connections
    assert conn.close == "fin" and conn.rst_from is None and conn.initiator == "client"
    assert len(conn.rsts.client) == 1  # still counted, as tshark does
    assert not any(n.startswith("reset by") for n in conn.notes)
    (note,) = [n for n in conn.notes if n.startswith("the RST from client")]
    assert "went on sending after it" in note and "server went on too" in note
