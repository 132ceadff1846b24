"""packets_after_fault counts the connection's segments after the fault, in both families."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from orchestrator.pcap.reader import TcpPacket
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.verdict.judge import packets_after


def packet(frame: int, t: float, src: str, sport: int, dst: str, dport: int) -> TcpPacket:
    return TcpPacket(frame, t, src, sport, dst, dport, 0, 0, 16, 100, 0, "x.pcap", int(t * 1e9))


@pytest.mark.parametrize(
    ("client", "server", "shown"),
    [
        ("10.77.0.20", "10.77.0.10", ("10.77.0.20:40000", "10.77.0.10:7000")),
        ("fd77::20", "fd77::10", ("[fd77::20]:40000", "[fd77::10]:7000")),
    ],
)
def test_only_the_connections_segments_after_the_time_count(
    client: str, server: str, shown: tuple[str, str]
) -> None:
    conn = cast(ConnectionSummary, SimpleNamespace(client=shown[0], server=shown[1]))
    packets = [
        packet(1, 1.0, client, 40000, server, 7000),  # before the fault
        packet(2, 5.0, client, 40000, server, 7000),
        packet(3, 6.0, server, 7000, client, 40000),
        packet(4, 6.5, client, 40001, server, 7000),  # another connection
    ]
    assert [r.frame for r in packets_after(packets, conn, 4.0)] == [2, 3]
