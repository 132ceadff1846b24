"""Which segments a host sent are in the receiver's own capture: the ones that are not never
reached it (a cut, a blackhole, a powered-off peer). Both captures are on one machine's clock,
so an arrival comes at or just after its send.

A retransmission has the same headers as the segment it repeats, so an arrival is matched with
the latest identical send before it: when the original is lost and the retransmission arrives,
the arrival is the retransmission's, not the original's.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable
from pathlib import Path

from orchestrator.pcap.reader import PSH, TcpPacket, read_tcp

SKEW_NS = 1_000_000  # an arrival stamped up to 1 ms before its send still matches (timestamp jitter)
MAX_LATENCY_NS = 1_000_000_000  # beyond this, an identical arrival is another send's
LOOSE_LATENCY_NS = 50_000_000  # for the loose match (same seq, other flags or length)
MAX_PACKETS = 2_000_000  # beyond this, delivery stays unknown rather than costing memory

Send = tuple[int, str, int]  # (time_ns, file, frame)
KeyFn = Callable[[TcpPacket], Hashable]


class Delivery:
    def __init__(self, receivers: set[str], delivered: set[tuple[str, int]]) -> None:
        self.receivers = receivers  # addresses whose captures were read
        self.frames = delivered  # (file, frame) of sends found in the receiver's capture

    def delivered(self, p: TcpPacket) -> bool | None:
        """True: in the receiver's capture; False: not there; None: the receiver was not captured."""
        if p.dst not in self.receivers:
            return None
        return (p.file, p.frame) in self.frames


def _exact(p: TcpPacket) -> Hashable:
    return (p.src, p.sport, p.dst, p.dport, p.seq, p.ack, p.flags, p.payload_len)


def _loose(p: TcpPacket) -> Hashable:
    # Offloads may split or merge segments between two captures, and PSH follows the split.
    return (p.src, p.sport, p.dst, p.dport, p.seq, p.flags & ~PSH)


def delivery_of(sources: list[tuple[Path, str]]) -> Delivery | None:
    """sources: (pcap, the capturing host's address). None when it would cost too much memory."""
    sent: list[TcpPacket] = []
    received: list[TcpPacket] = []
    for path, address in sources:
        for p in read_tcp(path):
            if p.src == address:
                sent.append(p)
            elif p.dst == address:
                received.append(p)
            if len(sent) + len(received) > MAX_PACKETS:
                return None
    delivered: set[tuple[str, int]] = set()
    _match(sent, received, _exact, MAX_LATENCY_NS, delivered)
    _match(
        [p for p in sent if (p.file, p.frame) not in delivered], received, _loose, LOOSE_LATENCY_NS, delivered
    )
    return Delivery({address for _, address in sources}, delivered)


def _match(
    sent: list[TcpPacket], received: list[TcpPacket], key: KeyFn, latency: int, out: set[tuple[str, int]]
) -> None:
    sends: dict[Hashable, list[Send]] = {}
    for p in sent:
        sends.setdefault(key(p), []).append((p.time_ns, p.file, p.frame))
    for times in sends.values():
        times.sort()
    for a in received:
        same = sends.get(key(a))
        if not same:
            continue
        i = bisect.bisect_right(same, (a.time_ns + SKEW_NS, "\uffff", 0)) - 1
        if i >= 0 and a.time_ns - same[i][0] <= latency:
            out.add((same[i][1], same[i][2]))
