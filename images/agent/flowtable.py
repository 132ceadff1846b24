"""What a router's supervisor knows about the flows it forwards, and the segments it forges.

The sequence numbers come from the packets themselves: a packet socket on every interface
(NET_RAW) reads each TCP header that passes, so the supervisor knows, per direction of each
4-tuple, the last ACK a host sent (its rcv_nxt) and where its data ended. A forged segment is
built with scapy (its checksums) and sent through a raw IP socket, so the router's own kernel
routes it and resolves the neighbour, as for any packet it sends.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
_TCP = 6
FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}

Tuple = tuple[str, int, str, int]  # src, sport, dst, dport: one direction of a flow


@dataclass
class Direction:
    """One direction of a flow, as last seen on the wire."""

    seq_end: int = 0  # seq + length (+1 for SYN or FIN) of the last segment: where its data ends
    ack: int | None = None  # the last ACK number it carried: what its sender expects next
    window: int = 0
    seen: float = 0.0


class FlowTable:
    """Per direction of each flow, what passed last. Filled by `sniff`, read by the forgers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flows: dict[Tuple, Direction] = {}

    def note(self, key: Tuple, seq_end: int, ack: int | None, window: int) -> None:
        with self.lock:
            d = self.flows.setdefault(key, Direction())
            d.seq_end, d.window, d.seen = seq_end, window, time.time()
            if ack is not None:
                d.ack = ack

    def expected_by(self, receiver: Tuple) -> int | None:
        """The sequence number `receiver`'s host expects next from its peer (receiver is the
        direction that host sends in): the later of its last ACK and the end of what its peer
        last sent it (a segment that passed here has as good as arrived)."""
        with self.lock:
            mine = self.flows.get(receiver)
            theirs = self.flows.get((receiver[2], receiver[3], receiver[0], receiver[1]))
        values = [
            v for v in (mine.ack if mine else None, theirs.seq_end if theirs else None) if v is not None
        ]
        if not values:
            return None
        best = values[0]
        for v in values[1:]:
            if (v - best) % 2**32 < 2**31:  # later in sequence space
                best = v
        return best

    def latest_toward(self, address: str, port: int) -> Tuple | None:
        """The most recently active direction sent *by* `address` on a flow with `port` on
        either end: the receiver's direction of the flow a segment to `address` would join."""
        with self.lock:
            found = [
                (d.seen, key)
                for key, d in self.flows.items()
                if key[0] == address and port in (key[1], key[3]) and d.ack is not None
            ]
        return max(found)[1] if found else None


def sniff(table: FlowTable, stop: threading.Event) -> None:
    """Read every TCP header that passes any interface, received or sent."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, _ = sock.recvfrom(256)
        except TimeoutError:
            continue
        parsed = _tcp_header(data)
        if parsed is not None:
            key, seq_end, ack, window = parsed
            table.note(key, seq_end, ack, window)


def _tcp_header(data: bytes) -> tuple[Tuple, int, int | None, int] | None:
    if not data:
        return None
    version = data[0] >> 4
    if version == 4 and len(data) >= 20 and data[9] == _TCP:
        ihl = (data[0] & 0x0F) * 4
        total = struct.unpack_from("!H", data, 2)[0]
        src, dst = (
            socket.inet_ntop(socket.AF_INET, data[12:16]),
            socket.inet_ntop(socket.AF_INET, data[16:20]),
        )
        payload_total = total - ihl
    elif version == 6 and len(data) >= 40 and data[6] == _TCP:
        ihl = 40
        payload_total = struct.unpack_from("!H", data, 4)[0]
        src, dst = (
            socket.inet_ntop(socket.AF_INET6, data[8:24]),
            socket.inet_ntop(socket.AF_INET6, data[24:40]),
        )
    else:
        return None
    if len(data) < ihl + 20:
        return None
    sport, dport, seq, ack, off_flags, window = struct.unpack_from("!HHIIHH", data, ihl)
    flags = off_flags & 0x1FF
    length = payload_total - (off_flags >> 12) * 4
    seq_end = (seq + length + (1 if flags & 0x03 else 0)) % 2**32
    return (src, sport, dst, dport), seq_end, ack if flags & 0x10 else None, window


# conntrack -E -o timestamp: "[1764587000.123]\t[DESTROY] tcp 6 ESTABLISHED src=.. dst=.. sport=..",
# then the reply direction's src, dst, sport, dport; an UPDATE has the timeout before the state.
_EVENT = re.compile(r"^\[(?P<t>[\d.]+)\]\s+\[(?P<kind>[A-Z]+)\]\s+tcp\s+\d+\s+(?:\d+\s+)?(?P<state>[A-Z_]+)?")
_TUPLE = re.compile(r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")


@dataclass(frozen=True)
class CtEvent:
    t: float
    kind: str  # NEW, UPDATE, DESTROY
    state: str | None
    orig: Tuple
    reply: Tuple


def parse_event(line: str) -> CtEvent | None:
    m = _EVENT.match(line)
    tuples = _TUPLE.findall(line)
    if m is None or len(tuples) < 2:
        return None
    (s1, d1, p1, q1), (s2, d2, p2, q2) = tuples[:2]
    return CtEvent(
        float(m["t"]), m["kind"], m["state"], (s1, int(p1), d1, int(q1)), (s2, int(p2), d2, int(q2))
    )


def forge(src: str, sport: int, dst: str, dport: int, flags: str, seq: int, ack: int = 0) -> bytes:
    """One TCP segment, checksums and all (scapy), as bytes for a raw IP socket."""
    # Imported here: scapy takes about a second to import; the supervisor warms it up at start.
    from scapy.layers.inet import IP, TCP  # noqa: PLC0415
    from scapy.layers.inet6 import IPv6  # noqa: PLC0415

    layer = IPv6(src=src, dst=dst) if ipaddress.ip_address(dst).version == 6 else IP(src=src, dst=dst)
    segment = layer / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=0)
    return bytes(segment)


def send_raw(packet: bytes, dst: str) -> None:
    """Through the router's own stack (routing, neighbours), source address as forged."""
    if ipaddress.ip_address(dst).version == 6:
        # IPPROTO_RAW on IPv6 means the header is included (Linux 4.5 and later).
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
            sock.sendto(packet, (dst, 0, 0, 0))
        return
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        sock.sendto(packet, (dst, 0))


def flag_value(flags: str) -> int:
    return sum(FLAG_BITS[f] for f in flags)
