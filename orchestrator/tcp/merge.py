"""One stream of what each kernel really sent: every host's packets taken from its own capture.

A packet lost in a cut appears only in its sender's capture, and a drop inside a namespace hides
the sender's packets from that capture alone; so each side's sends are read where they left.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path

from orchestrator.pcap.reader import TcpPacket, read_tcp


def sent_by(path: Path, address: str) -> Iterator[TcpPacket]:
    for packet in read_tcp(path):
        if packet.src == address:
            yield packet


def merge_sent(sources: list[tuple[Path, str]]) -> Iterator[TcpPacket]:
    """sources: (pcap, the address of the host that captured it). Merged in time order."""
    return heapq.merge(*(sent_by(path, address) for path, address in sources), key=lambda p: p.time_ns)


def merge_all(paths: list[Path]) -> Iterator[TcpPacket]:
    """One host's whole view (what it sent and what reached it), across its boots, in time order."""
    return heapq.merge(*(read_tcp(path) for path in paths), key=lambda p: p.time_ns)
