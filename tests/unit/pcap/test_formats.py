"""The capture formats (`pcap`, `pcapng`): what the writers write, an independent reader (scapy)
reads back; what the parsers read, independent encoders (struct by hand, `test_reader`'s blocks)
wrote."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from scapy.utils import rdpcap

from orchestrator.errors import CaptureFormatError
from orchestrator.pcap import pcap, pcapng
from orchestrator.pcap.reader import read_tcp
from tests.helpers.pcaps import Conv, scapy_packet
from tests.unit.pcap.test_reader import _block, _epb, _idb, _shb, _spb


def _frames() -> list[bytes]:
    c = Conv()
    c.handshake()
    c.data("c", 300)
    return [bytes(scapy_packet(s)) for s in c.segs]


# ---------------------------------------------------------------------------
# classic pcap


@pytest.mark.parametrize("nano", [False, True])
def test_the_pcap_writer_writes_what_scapy_reads(tmp_path: Path, nano: bool) -> None:
    frames = _frames()
    path = tmp_path / "w.pcap"
    with open(path, "wb") as f:
        w = pcap.Writer(f, 1, 96, nano=nano)
        for k, data in enumerate(frames):
            w.write(1_700_000_000 + k, 123_456 + k, data[:96], len(data))
    got = rdpcap(str(path))
    assert [bytes(p) for p in got] == [d[:96] for d in frames]
    assert [p.wirelen for p in got] == [len(d) for d in frames]
    unit = 1 if nano else 1000
    assert [float(p.time) for p in got] == pytest.approx(
        [1_700_000_000 + k + (123_456 + k) * unit / 1e9 for k in range(len(frames))], abs=1e-9
    )
    with open(path, "rb") as f:
        header = pcap.parse_header(f.read(pcap.FILE_HEADER.size))
        records = list(pcap.read_records(f, header))
    assert (header.linktype, header.snaplen, header.record_len) == (1, 96, 16)
    assert [r.data for r in records] == [d[:96] for d in frames]


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize(
    ("magic", "record_len", "ns_per_unit"),
    [(0xA1B2C3D4, 16, 1000), (0xA1B23C4D, 16, 1), (0xA1B2CD34, 24, 1000)],
)
def test_pcap_headers_of_every_magic_and_byte_order(
    endian: str, magic: int, record_len: int, ns_per_unit: int
) -> None:
    head = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, 0x1000_0071)  # FCS bits above
    assert pcap.byte_order(head) == endian
    header = pcap.parse_header(head)
    assert (header.endian, header.magic, header.snaplen, header.linktype) == (endian, magic, 262144, 113)
    assert header.record_len == record_len
    assert header.time_ns(5, 7) == 5_000_000_000 + 7 * ns_per_unit


def test_what_is_not_a_pcap_header() -> None:
    assert pcap.byte_order(b"\x0a\x0d\x0d\x0a" + bytes(20)) is None
    assert pcap.byte_order(b"\xd4\xc3") is None
    with pytest.raises(CaptureFormatError):
        pcap.parse_header(b"\xd4\xc3\xb2\xa1" + bytes(10))  # cut short


def test_records_are_counted_whole() -> None:
    out = io.BytesIO()
    w = pcap.Writer(out, 1, 65535)
    for n in (60, 0, 1500):
        w.write(1, 2, bytes(n))
    data = out.getvalue()
    header = pcap.parse_header(data)
    ends = [24 + 16 + 60, 24 + 2 * 16 + 60, len(data)]
    assert pcap.count_records(data, 24, header) == (3, len(data))
    for cut in range(24, len(data)):
        whole = sum(1 for e in ends if e <= cut)
        assert pcap.count_records(data[:cut], 24, header) == (whole, ([24, *ends])[whole])


# ---------------------------------------------------------------------------
# pcapng


@pytest.mark.parametrize(
    ("tsresol", "units"),
    [
        (6, (1000, 1)),
        (9, (1, 1)),
        (3, (1_000_000, 1)),
        (12, (1, 1000)),
        (0x80 | 20, (1_000_000_000, 1 << 20)),
    ],
)
def test_timestamp_resolutions(tsresol: int, units: tuple[int, int]) -> None:
    assert pcapng.units(tsresol) == units


@pytest.mark.parametrize("endian", ["<", ">"])
def test_interface_descriptions(endian: str) -> None:
    plain = _idb(endian, 276)
    assert pcapng.parse_idb(plain, 0, len(plain), endian) == pcapng.Interface(276, 0, 1000, 1, 0)
    shifted = _idb(endian, 1, tsresol=0x80 | 20, tsoffset=-3)
    face = pcapng.parse_idb(shifted, 0, len(shifted), endian)
    assert face == pcapng.Interface(1, 0, 1_000_000_000, 1 << 20, -3_000_000_000)
    assert face.time_ns(0, 1 << 20) == 1_000_000_000 - 3_000_000_000


def test_the_pcapng_writer_writes_what_scapy_reads(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "w.pcapng"
    with open(path, "wb") as f:
        w = pcapng.Writer(f)
        w.section([(pcapng.SHB_USERAPPL, b"tcpscen")])
        w.interface(1, 96, [(pcapng.IF_NAME, b"eth0"), (pcapng.IF_TSRESOL, bytes([9]))])
        for k, data in enumerate(frames):
            w.packet(1_700_000_000_123_456_789 + k, data[:96], len(data), ["a note", "é"] if k == 1 else ())
    got = rdpcap(str(path))
    assert [bytes(p) for p in got] == [d[:96] for d in frames]
    assert [p.wirelen for p in got] == [len(d) for d in frames]
    assert float(got[0].time) == pytest.approx(1_700_000_000.123456789, abs=1e-9)
    assert [p.comments for p in got][:3] == [None, [b"a note", "é".encode()], None]
    assert [p.frame for p in read_tcp(path)] == list(range(1, len(frames) + 1))


@pytest.mark.parametrize("endian", ["<", ">"])
def test_a_copy_keeps_every_block_and_adds_comments_after_the_packets_own(
    tmp_path: Path, endian: str
) -> None:
    frames = _frames()
    old = struct.pack(endian + "HH", 1, 3) + b"old\0" + struct.pack(endian + "HH", 0, 0)
    epb = _epb(endian, 0, 1_700_000_000_000_000, frames[1])
    with_opts = _block(endian, 6, epb[8:-4] + old)  # the same packet with a comment of its own
    first = _epb(endian, 0, 1_700_000_000_000_000, frames[0])
    spb, custom = _spb(endian, frames[2]), _block(endian, 0xBAD, b"kept")
    src = b"".join([_shb(endian), _idb(endian, 1), first, with_opts, spb, custom])
    out = io.BytesIO()
    w = pcapng.Writer(out)
    blocks = list(pcapng.read_blocks(io.BytesIO(src)))
    assert [(b.endian, b.type) for b in blocks] == [(endian, t) for t in (pcapng.SHB, 1, 6, 6, 3, 0xBAD)]
    for k, block in enumerate(blocks):
        w.copy(block, ["new"] if k in (2, 3, 4) else ())  # the SPB cannot take one: left as it is
    copied = out.getvalue()
    path = tmp_path / "copy.pcapng"
    path.write_bytes(copied)
    got = rdpcap(str(path))[:2]  # (scapy misreads the Simple Packet Block of a snaplen 0)
    assert [bytes(p) for p in got] == frames[:2]
    assert [p.comments for p in got] == [[b"new"], [b"old", b"new"]]
    assert copied.endswith(spb + custom)
    assert [p.frame for p in read_tcp(path)] == [1, 2, 3]


def test_blocks_cut_short_end_the_reading_and_corrupt_ones_are_errors() -> None:
    src = _shb("<") + _idb("<", 1) + _epb("<", 0, 1, b"x" * 60)
    for cut in range(len(src)):
        blocks = list(pcapng.read_blocks(io.BytesIO(src[:cut])))
        assert len(blocks) == sum(1 for end in (28, 48, len(src)) if end <= cut)
    with pytest.raises(CaptureFormatError, match="length 8"):
        list(pcapng.read_blocks(io.BytesIO(src + struct.pack("<II", 6, 8))))
    with pytest.raises(CaptureFormatError, match="section header"):
        list(pcapng.read_blocks(io.BytesIO(src + _shb("<")[:8] + b"\0\0\0\0" + _shb("<")[12:])))


def test_packet_blocks_are_counted_whole() -> None:
    src = b"".join([_shb(">"), _idb(">", 1), _epb(">", 0, 1, b"x" * 60), _spb(">", b"y" * 50)])
    src += _block(">", 5, bytes(12)) + _epb(">", 0, 2, b"z" * 61)
    assert pcapng.count_packets(src, 0, ">") == (3, len(src))
    cut = src[:-5]
    assert pcapng.count_packets(cut, 0, ">") == (2, len(src) - len(_epb(">", 0, 2, b"z" * 61)))
    assert pcapng.section_order(src) == ">"
