"""A listener whose accept queue was full, recorded in netns (kernel 6.18, backlog 2, the server
never calling accept(), two connections already queued; `tcp_synack_retries=2`).

* `dropped_*.pcap` (client's and server's capture of one connection): the handshake's ACK and
  the client's data reached the server's host and were dropped by the listener
  (ListenOverflows); the server re-sent its SYN-ACK twice, the client (ESTABLISHED) answered each
  and retransmitted its data; ss showed SYN-RECV on the server until the request was dropped, and
  the client's next retransmission met an RST without ACK: ECONNRESET.
* `abort_server.pcap` (two connections, `tcp_abort_on_overflow=1`): the listener answered the
  client's first ACK-bearing segment after the SYN-ACK with an RST (EmbryonicRsts=2).

* `ack_lost_*.pcap` (the real-kernel case synack_retries_1): `w` dropped the client's handshake
  ACK on the way (`tcp_synack_retries=1`), then healed; the client's data 4 s later met the
  same RST. The client's capture cannot tell the two causes apart, so the note gives both (the
  server's could: the ACK is in it or not; the note does not use that yet).

In every one the server never had the connection: "no longer had it" would be false; and in
every one the listener re-sent its SYN-ACK (its 1 s timer), or answered at once.

* `../reboot_idle/client.pcap` (a run of scratch's v6_pool_reboot_keepalive: IPv6, three idle
  connections with keep-alive 2 s / 1 s / 3, the server power-cycled with the same address and
  MAC 1 s in): one SYN-ACK each, then the probes 2.0 to 3.0 s later drew the new kernel's RST.
  `../../verdict/recorded/lb_idle_reset/client.pcap`: the load balancer's forged RST, 10 s after
  the only SYN-ACK. There the server had the connection: "never had it" would be false."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "listener_overflow"
HAD_IT = [
    Path(__file__).parent / "recorded" / "reboot_idle" / "client.pcap",
    Path(__file__).parents[1] / "verdict" / "recorded" / "lb_idle_reset" / "client.pcap",
]


@pytest.mark.parametrize(
    "name",
    [
        "dropped_client.pcap",
        "dropped_server.pcap",
        "abort_server.pcap",
        "ack_lost_client.pcap",
        "ack_lost_server.pcap",
    ],
)
def test_an_rst_from_a_listener_that_only_sent_syn_acks_is_not_a_lost_socket(name: str) -> None:
    conns = analyze_file(RECORDED / name).connections
    assert conns
    for conn in conns:
        assert (conn.handshake, conn.close, conn.rst_from) == ("complete", "rst", "server")
        (note,) = [n for n in conn.notes if n.startswith("the RST has no ACK flag")]
        assert "nothing but its SYN-ACK" in note and "accept queue" in note and "lost on the way" in note
        assert "no longer had" not in note
        assert "had made a connection of the handshake" not in note


@pytest.mark.parametrize("path", HAD_IT, ids=lambda p: p.parent.name)
def test_an_rst_long_after_the_only_syn_ack_is_from_a_host_that_had_the_connection(path: Path) -> None:
    conns = analyze_file(path).connections
    assert conns
    for conn in conns:
        assert (conn.handshake, conn.close, conn.rst_from) == ("complete", "rst", "server")
        (note,) = [n for n in conn.notes if n.startswith("the RST has no ACK flag")]
        assert "nothing but its SYN-ACK, once," in note and "re-sends its SYN-ACK after 1 s" in note
        assert "listener had made a connection of the handshake" in note
        assert "host rebooted" in note and "middlebox" in note
        assert "never had this connection" not in note and "accept queue" not in note
