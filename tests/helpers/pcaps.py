"""Small captures for the verdict tests: a TCP conversation scripter (written with scapy, in
any of the link types we read), a fast writer (`pcap.Writer`) for big or random captures, and
tshark helpers for checking our analysis against Wireshark's."""

from __future__ import annotations

import random
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether, Loopback
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter, wrpcap

from orchestrator.pcap import pcap

T0 = 1_700_000_000.0  # a realistic epoch: Wireshark treats a timestamp of exactly 0 as "unset"
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

Link = Literal["ether", "vlan", "sll", "sll2", "raw", "null", "ipv4"]
LINKTYPES: dict[str, int] = {
    "ether": 1,
    "vlan": 1,
    "sll": 113,
    "sll2": 276,
    "raw": 101,
    "null": 0,
    "ipv4": 228,
}


@dataclass(frozen=True)
class Seg:
    """One TCP segment to write: everything the analysis looks at."""

    t: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    seq: int
    ack: int
    win: int = 64240
    length: int = 0


_FLAG_LETTERS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK}


def flag_bits(flags: str | int) -> int:
    if isinstance(flags, int):
        return flags
    bits = 0
    for letter in flags:
        bits |= _FLAG_LETTERS[letter]
    return bits


@dataclass
class Conv:
    """Scripts one TCP connection between a client and a server, tracking sequence numbers.

    Each method appends one segment and returns its 1-based frame number in the file
    that `write` produces (several `Conv`s can share one `segs` list to make a file with
    several connections)."""

    client: tuple[str, int] = ("10.0.0.1", 40000)
    server: tuple[str, int] = ("10.0.0.2", 80)
    t: float = T0
    isn: tuple[int, int] = (1000, 500000)
    segs: list[Seg] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nxt = {"c": self.isn[0], "s": self.isn[1]}
        self.win = {"c": 64240, "s": 65160}

    def _ends(self, side: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return (self.client, self.server) if side == "c" else (self.server, self.client)

    def send(
        self,
        side: str,
        flags: str | int,
        length: int = 0,
        *,
        dt: float = 0.0,
        seq: int | None = None,
        ack: int | None = None,
        win: int | None = None,
    ) -> int:
        """Append a segment from side "c" or "s", `dt` seconds after the previous one.

        seq defaults to the side's next sequence number (which then advances by the
        payload, plus one for SYN/FIN); ack defaults to the peer's next sequence number."""
        bits = flag_bits(flags)
        self.t += dt
        (src, sport), (dst, dport) = self._ends(side)
        other = "s" if side == "c" else "c"
        s = self.nxt[side] if seq is None else seq
        a = (self.nxt[other] if ack is None else ack) if bits & ACK else (ack or 0)
        w = self.win[side] if win is None else win
        s &= 0xFFFFFFFF
        self.segs.append(Seg(self.t, src, sport, dst, dport, bits, s, a & 0xFFFFFFFF, w, length))
        end = (s + length + (1 if bits & (SYN | FIN) else 0)) & 0xFFFFFFFF
        if seq is None or 0 < ((end - self.nxt[side]) & 0xFFFFFFFF) < 0x80000000:
            self.nxt[side] = end
        return len(self.segs)

    # Conveniences.
    def handshake(self, rtt: float = 0.001) -> None:
        self.send("c", "S")
        self.send("s", "SA", dt=rtt / 2)
        self.send("c", "A", dt=rtt / 2)

    def data(self, side: str, length: int = 100, dt: float = 0.01) -> int:
        return self.send(side, "PA", length, dt=dt)

    def ack(self, side: str, dt: float = 0.001, **kw: Any) -> int:
        return self.send(side, "A", dt=dt, **kw)

    def fin(self, side: str, dt: float = 0.01) -> int:
        return self.send(side, "FA", dt=dt)

    def rst(self, side: str, dt: float = 0.01, with_ack: bool = True) -> int:
        return self.send(side, "RA" if with_ack else "R", dt=dt)

    def keepalive(self, side: str, dt: float) -> int:
        return self.send(side, "A", dt=dt, seq=self.nxt[side] - 1)

    def retransmit(self, side: str, frame: int, dt: float) -> int:
        """Send again the segment of `frame` (same seq, flags and length)."""
        old = self.segs[frame - 1]
        return self.send(side, old.flags, old.length, dt=dt, seq=old.seq)

    def write(self, path: Path, link: Link = "ether", fmt: str = "pcap", v6: bool = False) -> Path:
        return write_scapy(path, self.segs, link=link, fmt=fmt, v6=v6)


def zero_window_backoff() -> Conv:
    """A zero window held: the sender's probes (keep-alive shaped) back off, each gap doubling."""
    c = Conv()
    c.handshake()
    c.data("c", 1000)
    c.ack("s", win=0)
    for gap in (0.236, 0.476, 0.96, 1.884):
        c.keepalive("c", dt=gap)
        c.ack("s", dt=0.001, win=0)
    return c


def _v6(addr: str) -> str:
    """Map a dotted IPv4 address into the documentation IPv6 prefix."""
    a, b, c, d = (int(x) for x in addr.split("."))
    return f"2001:db8::{a:x}:{b:x}:{c:x}:{d:x}"


def scapy_packet(seg: Seg, link: Link = "ether", v6: bool = False) -> Packet:
    ip: Packet = IPv6(src=_v6(seg.src), dst=_v6(seg.dst)) if v6 else IP(src=seg.src, dst=seg.dst)
    l4 = TCP(sport=seg.sport, dport=seg.dport, flags=seg.flags, seq=seg.seq, ack=seg.ack, window=seg.win)
    pkt = ip / l4
    if seg.length:
        pkt = pkt / Raw(b"x" * seg.length)
    proto = 0x86DD if v6 else 0x0800
    if link == "ether":
        pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=proto) / pkt
    elif link == "vlan":
        pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=7, type=proto) / pkt
    elif link == "sll":
        pkt = (
            CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x01\0\0", proto=proto) / pkt
        )
    elif link == "sll2":
        pkt = (
            CookedLinuxV2(
                proto=proto, ifindex=2, lladdrtype=1, pkttype=0, lladdrlen=6, src=b"\x02\0\0\0\0\x01\0\0"
            )
            / pkt
        )
    elif link == "null":
        pkt = Loopback(type=30 if v6 else 2) / pkt
    pkt.time = seg.t
    return pkt


def write_scapy(
    path: Path, segs: Sequence[Seg], link: Link = "ether", fmt: str = "pcap", v6: bool = False
) -> Path:
    """Write with scapy: an encoder independent of our reader. fmt: pcap, pcap-ns or pcapng."""
    pkts = [scapy_packet(s, link, v6) for s in segs]
    linktype = LINKTYPES[link]
    if v6 and link == "ipv4":
        raise ValueError("link ipv4 carries IPv4 only")
    if fmt == "pcapng":
        with PcapNgWriter(str(path)) as w:
            for p in pkts:
                w.write(p)
    else:
        wrpcap(str(path), pkts, linktype=linktype, nano=fmt == "pcap-ns")
    return path


# ---------------------------------------------------------------------------
# A fast writer (no scapy) for big and random captures.

_ETH_IP4_TCP = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH")


def _frame_bytes(seg: Seg, payload: bytes) -> bytes:
    total = 20 + 20 + seg.length
    return (
        _ETH_IP4_TCP.pack(
            b"\x02\0\0\0\0\x02",
            b"\x02\0\0\0\0\x01",
            0x0800,
            0x45,
            0,
            total,
            0,
            0x4000,
            64,
            6,
            0,
            socket.inet_aton(seg.src),
            socket.inet_aton(seg.dst),
            seg.sport,
            seg.dport,
            seg.seq,
            seg.ack,
            0x50,
            seg.flags,
            seg.win,
            0,
            0,
        )
        + payload[: seg.length]
    )


def write_fast(path: Path, segs: Iterable[Seg], snaplen: int = 96) -> Path:
    """Classic little-endian microsecond pcap, Ethernet/IPv4/TCP, payload cut at `snaplen`
    (the IP length still says the full size, as with tcpdump -s)."""
    filler = b"x" * 65535
    with open(path, "wb") as f:
        w = pcap.Writer(f, LINKTYPES["ether"], snaplen)
        for seg in segs:
            data = _frame_bytes(seg, filler)
            sec = int(seg.t)
            usec = round((seg.t - sec) * 1e6)
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            w.write(sec, usec, data[:snaplen], len(data))
    return path


# ---------------------------------------------------------------------------
# Random conversations, to compare our analysis with tshark's on many odd cases.


_GAPS = [0.0001, 0.001, 0.0029, 0.0031, 0.005, 0.019, 0.021, 0.05, 0.2, 1.0, 7.5]  # around the thresholds


def random_conversation(
    rng: random.Random, client: tuple[str, int], server: tuple[str, int], t0: float
) -> Conv:
    """A connection that does a bit of everything TCP analysis cares about: data both ways,
    lost and retransmitted segments, duplicate ACKs, keep-alives, zero windows and their probes,
    out-of-order segments, with time gaps on both sides of Wireshark's thresholds."""
    near_wrap = rng.random() < 0.1  # sequence numbers that wrap around 2**32
    first = 0xFFFFFFFF - rng.randint(0, 3000) if near_wrap else rng.getrandbits(32)
    c = Conv(client=client, server=server, t=t0, isn=(first, rng.getrandbits(32)))
    if rng.random() < 0.8:
        c.send("c", "S", dt=rng.choice(_GAPS))
        if rng.random() < 0.2:
            c.send("c", "S", dt=rng.choice(_GAPS), seq=c.isn[0])  # SYN retransmission
        if rng.random() < 0.9:
            c.send("s", "SA", dt=rng.choice(_GAPS))
            c.send("c", "A", dt=rng.choice(_GAPS))
    sent: dict[str, list[int]] = {"c": [], "s": []}  # frames with data
    for _ in range(rng.randint(5, 40)):
        _random_event(rng, c, rng.choice("cs"), sent)
    end = rng.random()
    if end < 0.3:
        c.fin("c", dt=rng.choice(_GAPS))
        c.send("s", "FA" if rng.random() < 0.5 else "A", dt=rng.choice(_GAPS))
        c.send("c", "A", dt=rng.choice(_GAPS))
    elif end < 0.5:
        c.rst(rng.choice("cs"), dt=rng.choice(_GAPS), with_ack=rng.random() < 0.5)
    return c


def random_capture(path: Path, seed: int, n: int) -> Path:
    """`n` random conversations, overlapping in time, a quarter of them reusing the previous
    one's 4-tuple (right after it, or a second later)."""
    rng = random.Random(seed)
    convs: list[Conv] = []
    for k in range(n):
        if convs and rng.random() < 0.25:
            prev = convs[-1]
            convs.append(
                random_conversation(rng, prev.client, prev.server, prev.t + rng.choice([0.001, 1.0]))
            )
        else:
            client = (f"10.0.{k % 200}.1", 10000 + k)
            convs.append(random_conversation(rng, client, ("10.1.0.2", 80), T0 + rng.random()))
    return write_fast(path, sorted((s for c in convs for s in c.segs), key=lambda s: s.t))


def _random_event(rng: random.Random, c: Conv, side: str, sent: dict[str, list[int]]) -> None:
    other = "s" if side == "c" else "c"
    gap = rng.choice(_GAPS)
    r = rng.random()
    if r < 0.30:
        sent[side].append(c.send(side, "PA", rng.choice([1, 2, 50, 100, 1448]), dt=gap))
    elif r < 0.36:  # a segment lost before the capture point: the sequence jumps
        c.nxt[side] += rng.choice([1, 100, 1448])
    elif r < 0.50:
        c.send(side, "A", dt=gap)
    elif r < 0.58:  # duplicate ACKs, maybe followed by a fast retransmission
        ackv = c.nxt[other] - rng.choice([0, 0, 100])
        for _ in range(rng.randint(1, 3)):
            c.send(side, "A", dt=rng.choice([0.0001, 0.001]), ack=ackv)
        if sent[other] and rng.random() < 0.7:
            old = c.segs[rng.choice(sent[other]) - 1]
            c.send(other, "PA", old.length, dt=rng.choice([0.0005, 0.002, 0.025]), seq=old.seq)
    elif r < 0.70 and sent[side]:  # retransmission of an earlier segment, maybe resized
        old = c.segs[rng.choice(sent[side]) - 1]
        length = old.length if rng.random() < 0.7 else max(1, old.length // 2)
        c.send(side, "PA", length, dt=gap, seq=old.seq)
    elif r < 0.78:
        c.send(side, "A", rng.choice([0, 0, 1]), dt=gap, seq=c.nxt[side] - 1)  # keep-alive
    elif r < 0.84:
        c.send(side, "A", dt=gap, win=0)  # zero window
    elif r < 0.88:
        c.send(side, "PA", 1, dt=gap, seq=c.nxt[side])  # a zero-window probe, if the window is 0
    elif r < 0.92:
        c.send(side, "A", dt=gap, win=rng.choice([1000, 65160]))  # window update
    elif r < 0.95:  # out of order: the next segment before this one
        c.nxt[side] += 100
        sent[side].append(c.send(side, "PA", 100, dt=gap))
        c.nxt[side] -= 200
        sent[side].append(c.send(side, "PA", 100, dt=rng.choice([0.0001, 0.002, 0.01])))
        c.nxt[side] += 100
    elif r < 0.955:
        c.send("c", "S", dt=gap, seq=c.isn[0])  # the SYN again, mid-connection
    elif r < 0.97:
        fin = c.send(side, "FA", dt=gap)
        if rng.random() < 0.5:
            c.retransmit(side, fin, dt=rng.choice(_GAPS))
    else:
        c.send(side, "R" if rng.random() < 0.5 else "RA", dt=gap, win=rng.choice([0, 1000]))


# ---------------------------------------------------------------------------
# tshark


def tshark() -> str | None:
    return shutil.which("tshark")


def tshark_fields(path: Path, fields: Sequence[str], display_filter: str | None = None) -> list[list[str]]:
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    if display_filter:
        cmd += ["-Y", display_filter]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def tshark_frames(path: Path, display_filter: str) -> list[int]:
    """Frame numbers matching a display filter."""
    return [int(row[0]) for row in tshark_fields(path, ["frame.number"], display_filter)]
