"""The streaming pcap/pcapng reader, checked against what the captures were built from (and, for
frame numbers and lengths, against tshark)."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from orchestrator.errors import CaptureFormatError
from orchestrator.pcap.reader import ACK, CHUNK, FIN, PSH, SYN, TcpPacket, read_tcp
from tests.helpers.pcaps import (
    T0,
    Conv,
    Seg,
    _v6,
    scapy_packet,
    tshark,
    tshark_fields,
    write_fast,
    write_scapy,
)


def eth() -> Ether:
    """Explicit MACs: a bare Ether() makes scapy look up routes and ARP, slowly."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def conversation() -> Conv:
    c = Conv()
    c.handshake()
    c.data("c", 100)
    c.ack("s")
    c.data("s", 1448)
    c.ack("c")
    c.fin("c")
    c.send("s", "FA", dt=0.001)
    c.ack("c")
    return c


def expected(segs: list[Seg], v6: bool = False) -> list[tuple[object, ...]]:
    return [
        (
            _v6(s.src) if v6 else s.src,
            s.sport,
            _v6(s.dst) if v6 else s.dst,
            s.dport,
            s.seq,
            s.ack,
            s.flags,
            s.win,
            s.length,
        )
        for s in segs
    ]


def fields(pkts: list[TcpPacket]) -> list[tuple[object, ...]]:
    return [(p.src, p.sport, p.dst, p.dport, p.seq, p.ack, p.flags, p.window, p.payload_len) for p in pkts]


@pytest.mark.parametrize("link", ["ether", "vlan", "sll", "sll2", "raw", "null", "ipv4"])
@pytest.mark.parametrize("fmt", ["pcap", "pcap-ns", "pcapng"])
def test_every_link_type_and_format(tmp_path: Path, link: str, fmt: str) -> None:
    c = conversation()
    path = c.write(tmp_path / f"c.{fmt}", link=link, fmt=fmt)  # type: ignore[arg-type]
    cap = read_tcp(path)
    pkts = list(cap)
    assert fields(pkts) == expected(c.segs)
    assert [p.frame for p in pkts] == list(range(1, len(c.segs) + 1))
    assert cap.packets == len(c.segs) and cap.tcp_packets == len(c.segs)
    assert not cap.truncated and cap.problem is None
    assert all(p.file == path.name for p in pkts)
    for p, s in zip(pkts, c.segs, strict=True):
        assert p.time == pytest.approx(s.t, abs=1e-6)
        assert abs(p.time_ns - round(s.t * 1e9)) <= 1000  # scapy stores microseconds or nanoseconds


@pytest.mark.parametrize("link", ["ether", "sll2", "raw"])
def test_ipv6(tmp_path: Path, link: str) -> None:
    c = conversation()
    pkts = list(read_tcp(c.write(tmp_path / "v6.pcap", link=link, v6=True)))  # type: ignore[arg-type]
    assert fields(pkts) == expected(c.segs, v6=True)
    assert pkts[0].src == "2001:db8::a:0:0:1"  # compressed form


def _write_packets(path: Path, pkts: list[Packet], linktype: int = 1) -> Path:
    for k, p in enumerate(pkts):
        p.time = T0 + k
    wrpcap(str(path), pkts, linktype=linktype)
    return path


def test_frame_numbers_count_every_frame_and_ignore_non_tcp(tmp_path: Path) -> None:
    tcp = eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80, flags="S", seq=7)
    pkts: list[Packet] = [
        eth() / ARP(),
        eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=53, dport=53) / Raw(b"q"),
        tcp,
        eth() / IP(src="10.0.0.3", dst="10.0.0.1") / ICMP(type=3, code=1) / bytes(tcp[IP])[:28],
        eth() / IPv6(src="::1", dst="::2") / UDP(),
        tcp.copy(),
    ]
    path = _write_packets(tmp_path / "mixed.pcap", pkts)
    cap = read_tcp(path)
    got = list(cap)
    assert [p.frame for p in got] == [3, 6]
    assert cap.packets == 6 and cap.tcp_packets == 2
    if tshark():
        rows = tshark_fields(path, ["frame.number"], "tcp && !icmp")
        assert [int(r[0]) for r in rows] == [3, 6]


def test_ipv4_options_fragments_and_tso_lengths(tmp_path: Path) -> None:
    base = IP(src="10.0.0.1", dst="10.0.0.2")
    seg = TCP(sport=1234, dport=80, flags="PA", seq=100, ack=5)
    pkts: list[Packet] = [
        eth() / IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_NOP()] * 4) / seg / Raw(b"a" * 10),
        eth() / base / seg / Raw(b"b" * 20),
        eth() / IP(src="10.0.0.1", dst="10.0.0.2", frag=3, proto=6) / Raw(b"d" * 24),  # not a first fragment
    ]
    # TSO as seen on the sending host: IP total length 0, the frame carries 40 + 16 bytes.
    tso = bytearray(bytes(eth() / base / seg / Raw(b"e" * 16)))
    tso[16:18] = b"\x00\x00"
    pkts.append(Ether(bytes(tso)))
    path = _write_packets(tmp_path / "ip.pcap", pkts)
    got = list(read_tcp(path))
    assert [(p.frame, p.payload_len) for p in got] == [(1, 10), (2, 20), (4, 16)]
    if tshark():
        rows = tshark_fields(path, ["frame.number", "tcp.len"], "tcp")
        assert [(int(f), int(n)) for f, n in rows] == [(1, 10), (2, 20), (4, 16)]


def test_first_fragment_is_read_as_the_whole_datagram(tmp_path: Path) -> None:
    """Documented limitation: no IP reassembly (Linux TCP sets DF, so its segments are not fragmented)."""
    pkt = eth() / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / TCP(flags="PA") / Raw(b"c" * 30)
    got = list(read_tcp(_write_packets(tmp_path / "frag.pcap", [pkt])))
    assert [(p.frame, p.payload_len) for p in got] == [(1, 30)]


def test_ipv6_extension_headers(tmp_path: Path) -> None:
    seg = TCP(sport=1234, dport=80, flags="PA", seq=1, ack=1) / Raw(b"z" * 12)
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
    pkts: list[Packet] = [
        eth() / v6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / seg,
        eth() / v6 / IPv6ExtHdrFragment(offset=0, m=0, id=1) / seg,
        eth() / v6 / IPv6ExtHdrFragment(offset=10, m=0, id=2, nh=6) / Raw(b"x" * 16),  # not the first
    ]
    got = list(read_tcp(_write_packets(tmp_path / "ext.pcap", pkts)))
    assert [(p.frame, p.src, p.payload_len) for p in got] == [(1, "2001:db8::1", 12), (2, "2001:db8::1", 12)]


def test_snaplen_does_not_shrink_payload_length(tmp_path: Path) -> None:
    c = conversation()
    path = write_fast(tmp_path / "snap.pcap", c.segs, snaplen=60)  # 14 + 20 + 20 + 6 bytes kept
    got = list(read_tcp(path))
    assert [p.payload_len for p in got] == [s.length for s in c.segs]
    assert max(p.payload_len for p in got) == 1448


def test_big_endian_classic_pcap(tmp_path: Path) -> None:
    c = conversation()
    little = (write_scapy(tmp_path / "le.pcap", c.segs)).read_bytes()
    # Byte-swap the file header and every record header: the packet bytes stay as they are.
    out = bytearray(struct.pack(">IHHiIII", *struct.unpack("<IHHiIII", little[:24])))
    pos = 24
    while pos < len(little):
        sec, usec, cap, orig = struct.unpack_from("<IIII", little, pos)
        out += struct.pack(">IIII", sec, usec, cap, orig) + little[pos + 16 : pos + 16 + cap]
        pos += 16 + cap
    path = tmp_path / "be.pcap"
    path.write_bytes(bytes(out))
    assert fields(list(read_tcp(path))) == expected(c.segs)
    if tshark():
        assert len(tshark_fields(path, ["frame.number"], "tcp")) == len(c.segs)


# ---------------------------------------------------------------------------
# pcapng built by hand: several interfaces, resolutions, sections and block kinds.


def _block(endian: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack(endian + "II", btype, total) + body + struct.pack(endian + "I", total)


def _shb(endian: str) -> bytes:
    return _block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(endian: str, linktype: int, tsresol: int | None = None, tsoffset: int | None = None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += struct.pack(endian + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
    if tsoffset is not None:
        opts += struct.pack(endian + "HHq", 14, 8, tsoffset)
    if opts:
        opts += struct.pack(endian + "HH", 0, 0)
    return _block(endian, 1, struct.pack(endian + "HHI", linktype, 0, 0) + opts)


def _epb(endian: str, iface: int, ts: int, data: bytes) -> bytes:
    head = struct.pack(endian + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return _block(endian, 6, head + data)


def _spb(endian: str, data: bytes) -> bytes:
    return _block(endian, 3, struct.pack(endian + "I", len(data)) + data)


def test_pcapng_interfaces_resolutions_sections_and_block_kinds(tmp_path: Path) -> None:
    segs = conversation().segs[:6]
    eth = [bytes(scapy_packet(s, "ether")) for s in segs]
    sll2 = [bytes(scapy_packet(s, "sll2")) for s in segs]
    ns = [round(s.t * 1e9) for s in segs]
    le, be = "<", ">"
    data = b"".join(
        [
            _shb(le),
            _idb(le, 1, tsresol=9),  # interface 0: Ethernet, nanoseconds
            _idb(le, 276),  # interface 1: Linux SLL2, default microseconds
            _idb(le, 101, tsresol=0x80 | 20, tsoffset=100),  # interface 2: raw IP, 2^-20 s, +100 s
            _epb(le, 0, ns[0], eth[0]),
            _block(le, 0x00000BAD, b"custom block, skipped"),
            _epb(le, 1, ns[1] // 1000, sll2[1]),
            _spb(le, eth[2]),  # interface 0, no timestamp: keeps the previous one
            _epb(le, 2, ((ns[3] // 1000 - 100_000_000) << 20) // 1_000_000, eth[3][14:]),
            _block(le, 5, struct.pack(le + "III", 0, 0, 0)),  # an Interface Statistics Block, skipped
            # A second section, big-endian, with its own interface table.
            _shb(be),
            _idb(be, 1),
            _epb(be, 0, ns[4] // 1000, eth[4]),
            _epb(be, 0, ns[5] // 1000, eth[5]),
        ]
    )
    path = tmp_path / "multi.pcapng"
    path.write_bytes(data)
    cap = read_tcp(path)
    got = list(cap)
    assert fields(got) == expected(segs)
    assert [p.frame for p in got] == [1, 2, 3, 4, 5, 6]
    assert cap.linktypes == {1, 276, 101}
    assert got[0].time_ns == ns[0]
    assert got[1].time_ns == ns[1] // 1000 * 1000
    assert got[2].time_ns == got[1].time_ns  # the Simple Packet Block has no timestamp
    assert abs(got[3].time_ns - ns[3]) < 2000  # 2^-20 s units, shifted by if_tsoffset
    assert got[4].time == pytest.approx(segs[4].t, abs=1e-6)
    if tshark():
        assert len(tshark_fields(path, ["frame.number"], "tcp")) == 6


# ---------------------------------------------------------------------------
# Damaged and wrong files


def test_truncated_pcap_keeps_what_is_there(tmp_path: Path) -> None:
    c = conversation()
    whole = write_scapy(tmp_path / "whole.pcap", c.segs).read_bytes()
    # Cut inside the last packet; then inside the last record header but one (the last is a 54-byte ACK).
    for cut, want in ((len(whole) - 5, len(c.segs) - 1), (len(whole) - (54 + 16) - 3, len(c.segs) - 2)):
        path = tmp_path / f"cut{cut}.pcap"
        path.write_bytes(whole[:cut])
        cap = read_tcp(path)
        got = list(cap)
        assert len(got) == want == cap.packets
        assert cap.truncated and cap.problem is not None and path.name in cap.problem
        assert fields(got) == expected(c.segs)[:want]
    path = tmp_path / "header-only.pcap"
    path.write_bytes(whole[:24])
    cap = read_tcp(path)
    assert list(cap) == [] and not cap.truncated and cap.packets == 0


def test_truncated_pcapng(tmp_path: Path) -> None:
    c = conversation()
    whole = write_scapy(tmp_path / "whole.pcapng", c.segs, fmt="pcapng").read_bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(whole[:-7])
    cap = read_tcp(path)
    got = list(cap)
    assert cap.truncated
    assert fields(got) == expected(c.segs)[: len(got)]
    assert len(got) == len(c.segs) - 1


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"hello, this is text\n" * 3, "text"),
        (b'{"not": "a capture"}', "text"),
        (bytes(range(200)), "not a pcap"),
        (b"\xd4\xc3", "too short"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "cut short"),
    ],
)
def test_not_a_capture(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "notes.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureFormatError) as err:
        read_tcp(path)
    assert str(path) in str(err.value)
    assert words in str(err.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureFormatError, match=r"nope\.pcap: no such capture file"):
        read_tcp(tmp_path / "nope.pcap")
    with pytest.raises(CaptureFormatError, match="directory"):
        read_tcp(tmp_path)


def test_iterating_again_rereads(tmp_path: Path) -> None:
    cap = read_tcp(conversation().write(tmp_path / "c.pcap"))
    first = list(cap)
    assert list(cap) == first and cap.packets == len(first)


def _peak_while_reading(path: Path) -> tuple[int, int, int]:
    """(TCP segments, frames, peak traced memory) for one pass over the file."""
    tracemalloc.start()
    try:
        cap = read_tcp(path)
        count = 0
        for _ in cap:
            count += 1
        return count, cap.packets, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat(tmp_path: Path) -> None:
    """Reading holds about two read chunks, however big the file. (UDP records, so that
    tracemalloc sees the reader's buffers rather than the packets it yields.)"""
    udp = eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6) / Raw(b"u" * 70)
    whole = _write_packets(tmp_path / "one.pcap", [udp]).read_bytes()
    path = tmp_path / "big.pcap"
    path.write_bytes(whole[:24] + whole[24:] * 250_000)
    count, frames, peak = _peak_while_reading(path)
    assert (count, frames) == (0, 250_000)
    assert peak < 2.5 * CHUNK < path.stat().st_size / 2


def test_flag_bits() -> None:
    assert (FIN, SYN, PSH, ACK) == (1, 2, 8, 16)
