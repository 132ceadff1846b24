"""The vectorised pass and the column reader give exactly what the reference loop and reader give.

The reference (`TcpCapture` iteration and `loop.analyze_stream`) is itself checked against tshark in
`test_analysis`; here it is the oracle, on captures of every shape: odd random conversations
cut into tiny chunks (so runs straddle chunk ends), a busy server's many connections, and
captures the fast layout cannot read (IPv6, VLAN, pcapng), which go the reference way.
"""

from __future__ import annotations

import importlib.util
import random
import struct
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.pcap import columns
from orchestrator.pcap.chunks import read_chunks
from orchestrator.pcap.columns import Chunk
from orchestrator.pcap.reader import TcpPacket, read_tcp
from orchestrator.tcp.analysis import Analysis, analyze_capture
from tests.helpers.pcaps import T0, random_capture, random_conversation, write_scapy
from tests.unit.pcap.test_reader import _epb, _idb, _shb, _spb

ROOT = Path(__file__).resolve().parents[3]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_analyze", ROOT / "bench" / "analyze.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_analyze"] = module
    spec.loader.exec_module(module)
    return module


def _both(path: Path) -> tuple[Analysis, Analysis]:
    return analyze_capture(read_tcp(path), vectorised=False), analyze_capture(read_tcp(path))


def _pairs(path: Path) -> list[tuple[int, TcpPacket]]:
    return segments_of(read_chunks(read_tcp(path)))


def segments_of(chunks: Iterable[Chunk]) -> list[tuple[int, TcpPacket]]:
    """Every segment of some chunks, with its position, columns or pairs."""
    out: list[tuple[int, TcpPacket]] = []
    for chunk in chunks:
        if chunk.pairs is not None:
            out.extend(chunk.pairs)
        elif chunk.columns is not None:
            cols = chunk.columns
            out.extend(zip(cols.pos.tolist(), cols.packets(np.arange(len(cols.pos))), strict=True))
    return out


@pytest.mark.parametrize("chunk", [1 << 22, 5000, 700])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_odd_conversations_in_small_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, chunk: int
) -> None:
    path = random_capture(tmp_path / "r.pcap", seed, 80)
    monkeypatch.setattr(columns, "CHUNK", chunk)
    reference, vectorised = _both(path)
    assert len(reference.connections) > 50
    assert vectorised == reference


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), chunk=st.sampled_from([600, 2000, 1 << 22]))
def test_odd_conversations_hypothesis(tmp_path: Path, seed: int, chunk: int) -> None:
    path = random_capture(tmp_path / f"h{seed}.pcap", seed, 25)
    old = columns.CHUNK
    columns.CHUNK = chunk
    try:
        reference, vectorised = _both(path)
    finally:
        columns.CHUNK = old
    assert vectorised == reference


@pytest.mark.parametrize("shape", ["many", "long"])
def test_a_busy_capture(tmp_path: Path, shape: str) -> None:
    """The benchmark's own traffic: retransmissions, keep-alives, zero windows, closes."""
    path = tmp_path / f"{shape}.pcap"
    _bench().write_capture(path, 60_000, shape, seed=3)
    reference, vectorised = _both(path)
    assert sum(c.retransmissions.client + c.retransmissions.server for c in reference.connections) > 1000
    assert vectorised == reference


def test_the_column_reader_is_the_reference_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = random_capture(tmp_path / "r.pcap", 4, 40)
    monkeypatch.setattr(columns, "CHUNK", 900)
    whole = list(enumerate(read_tcp(path), 1))
    assert _pairs(path) == whole


@pytest.mark.parametrize(
    ("link", "fmt", "v6"), [("vlan", "pcap", False), ("ether", "pcap", True), ("sll2", "pcapng", False)]
)
def test_what_the_fast_layout_cannot_read_goes_the_reference_way(
    tmp_path: Path, link: str, fmt: str, v6: bool
) -> None:
    rng = random.Random(9)
    convs = [
        random_conversation(rng, (f"10.0.0.{k}", 30000 + k), ("10.1.0.2", 80), T0 + k / 10)
        for k in range(1, 6)
    ]
    segs = sorted((s for c in convs for s in c.segs), key=lambda s: s.t)
    path = write_scapy(tmp_path / f"x.{fmt}", segs, link=link, fmt=fmt, v6=v6)  # type: ignore[arg-type]
    assert _pairs(path) == list(enumerate(read_tcp(path), 1))
    reference, vectorised = _both(path)
    assert vectorised == reference


def test_a_truncated_capture(tmp_path: Path) -> None:
    path = random_capture(tmp_path / "r.pcap", 6, 30)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 25])
    reference, vectorised = _both(path)
    assert reference.truncated and reference.problems
    assert vectorised == reference


@pytest.mark.parametrize("link", ["ether", "vlan", "sll", "sll2", "raw", "null", "ipv4"])
@pytest.mark.parametrize("fmt", ["pcap", "pcap-ns", "pcapng"])
def test_every_link_type_and_format_reads_the_same(tmp_path: Path, link: str, fmt: str) -> None:
    rng = random.Random(5)
    c = random_conversation(rng, ("10.0.0.1", 40000), ("10.1.0.2", 80), T0)
    path = write_scapy(tmp_path / f"x.{fmt}", c.segs, link=link, fmt=fmt)  # type: ignore[arg-type]
    reference = read_tcp(path)
    whole = list(enumerate(reference, 1))
    capture = read_tcp(path)
    got: list[tuple[int, TcpPacket]] = []
    for chunk in read_chunks(capture):
        if chunk.pairs is not None:
            got.extend(chunk.pairs)
        elif chunk.columns is not None:
            got.extend(
                zip(
                    chunk.columns.pos.tolist(),
                    chunk.columns.packets(np.arange(len(chunk.columns.pos))),
                    strict=True,
                )
            )
    assert got == whole
    assert (capture.packets, capture.tcp_packets, capture.linktypes) == (
        reference.packets,
        reference.tcp_packets,
        reference.linktypes,
    )


def _as_pcapng(src: Path, dst: Path, endian: str) -> Path:
    """A classic pcap's records as pcapng: two sections, the second with two interfaces (the
    packets alternate between them, one in nanoseconds), and a Simple Packet Block now and then."""
    data = src.read_bytes()
    out = bytearray(_shb(endian) + _idb(endian, 1))
    pos, k = 24, 0
    half = None
    while pos + 16 <= len(data):
        sec, usec, cap, _orig = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + cap]
        pos += 16 + cap
        k += 1
        if half is None and pos > len(data) // 2:
            half = k
            out += _shb(endian) + _idb(endian, 1) + _idb(endian, 1, tsresol=9)
        if half is None:
            out += _epb(endian, 0, sec * 1_000_000 + usec, frame) if k % 97 else _spb(endian, frame)
        else:
            iface = k % 2
            ts = sec * 1_000_000 + usec if iface == 0 else (sec * 1_000_000 + usec) * 1000
            out += _epb(endian, iface, ts, frame)
    dst.write_bytes(bytes(out))
    return dst


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("chunk", [1 << 22, 3000])
def test_pcapng_sections_interfaces_and_simple_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endian: str, chunk: int
) -> None:
    path = _as_pcapng(random_capture(tmp_path / "r.pcap", 12, 60), tmp_path / "r.pcapng", endian)
    monkeypatch.setattr(columns, "CHUNK", chunk)
    assert _pairs(path) == list(enumerate(read_tcp(path), 1))
    reference, vectorised = _both(path)
    assert len(reference.connections) > 40
    assert vectorised == reference
