"""The socket timeline's notes: with many connections, agreement is summed up in one note."""

from __future__ import annotations

from orchestrator.verdict.socket_reconcile import ConnectionSockets, Finding
from orchestrator.verdict.socket_timeline import SocketTimeline
from orchestrator.verdict.socket_verdict import SocketVerdict, _notes


def connection(port: int, *kinds: str) -> ConnectionSockets:
    c = ConnectionSockets(f"10.77.0.20:{port}", "10.77.0.10:7000", {"client": "client"}, {})
    c.findings = [Finding(kind, f"{kind} {port}", []) for kind in kinds]  # type: ignore[arg-type]
    return c


def test_a_half_open_connection_is_no_difference_with_its_packets() -> None:
    # A pool of 4 behind a NAT that dropped its late packets (scratch's nat_pool_forgotten): each
    # connection half-open at the end, the kernels as the captures show; the note said "no
    # difference with the captures on 0 of 4 connections".
    v = SocketVerdict(
        {"client": SocketTimeline("client", [], [], "client.sockets.jsonl")},
        [
            connection(40001, "agrees", "half-open"),
            connection(40002, "half-open"),
            connection(40003, "agrees"),
            connection(40004, "agrees", "differs"),
        ],
    )
    notes = _notes(v, None)
    assert "kernel sockets (ss sampled): no difference with the captures on 3 of 4 connections" in notes
    assert [n for n in notes if "half-open" in n] == [
        "kernel sockets (ss sampled), 10.77.0.20:40001 -> 10.77.0.10:7000, half-open: half-open 40001",
        "kernel sockets (ss sampled), 10.77.0.20:40002 -> 10.77.0.10:7000, half-open: half-open 40002",
    ]
