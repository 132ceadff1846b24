"""A TCP segment as the readers yield it (`TcpPacket`, a plain tuple), its flag bits, and what a
format's framing loop reports to the capture it reads for (`Sink`).

Its own module so that each format's module (`pcap`, `pcapng`) holds its framing loop, and
`reader`, which picks the loop, imports them: none of them imports `reader`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from orchestrator.pcap.icmp import Found

__all__ = [
    "ACK",
    "CHUNK",
    "CWR",
    "ECE",
    "FIN",
    "MAX_RECORD",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "Sink",
    "TcpPacket",
    "new_packet",
    "seconds",
]

# TCP flag bits, as in the 12 low bits of the TCP header's 13th-14th bytes.
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

CHUNK = 1 << 22  # 4 MiB reads
# A record claiming more than this is corruption, not a packet.
MAX_RECORD = 1 << 28


class TcpPacket(NamedTuple):
    """One TCP segment as captured. Cheap: a plain tuple."""

    frame: int  # 1-based frame number in the file, counting all frames (Wireshark's frame.number)
    time: float  # epoch seconds
    src: str  # dotted IPv4 or compressed IPv6
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int  # TCP flag bits (FIN=1, SYN=2, RST=4, PSH=8, ACK=16, ...)
    window: int  # raw 16-bit window field (not scaled)
    payload_len: int  # TCP payload length from the IP length (not the captured length)
    file: str  # capture file name, for evidence
    time_ns: int  # epoch nanoseconds: exact, for threshold comparisons


new_packet = tuple.__new__  # a TcpPacket from a tuple: without NamedTuple's __new__


def seconds(ns: int) -> float:
    """Epoch nanoseconds as float seconds, whole seconds and fraction apart: `ns / 1e9` would
    first round ns to a float (256 ns steps at today's epoch) and lose the microseconds' digit."""
    return ns // 1_000_000_000 + ns % 1_000_000_000 / 1e9


class Sink(Protocol):
    """What a framing loop reports as it reads: the capture's counters and findings
    (`reader.TcpCapture`)."""

    name: str
    linktypes: set[int]
    packets: int
    tcp_packets: int
    headers_cut: int

    def add_icmp(self, found: Found | None, frame: int, tns: int) -> None: ...

    def cut(self, what: str, frame: int) -> None: ...
