"""Sharing a capture between processes gives exactly what one process gives."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from scapy.utils import wrpcap

from orchestrator.errors import TcpscenError
from orchestrator.pcap import columns
from orchestrator.pcap.chunks import RowFilter, Walks, read_chunks
from orchestrator.pcap.columns import Chunk
from orchestrator.pcap.reader import TcpCapture, TcpPacket, read_tcp
from orchestrator.tcp import parallel, sizing
from orchestrator.tcp.analysis import analyze, analyze_capture
from orchestrator.tcp.compiled import Pass
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.parallel import analyze_shared, part_of
from orchestrator.tcp.sizing import auto_processes
from tests.helpers.pcaps import T0, random_capture, random_conversation, scapy_packet, write_scapy
from tests.unit.cli.test_analyze import cli
from tests.unit.tcp.test_fastpass import _walks
from tests.unit.tcp.test_vector import _as_pcapng, segments_of


def _owners(segments: list[tuple[int, TcpPacket]], processes: int) -> list[int]:
    """The process that keeps each segment (`parallel.Share.packet`)."""
    owners = [[k for k in range(processes) if parallel.Share(k, processes).packet(p)] for _i, p in segments]
    assert all(len(o) == 1 for o in owners)  # every segment by one process
    return [o[0] for o in owners]


@pytest.mark.parametrize("processes", [2, 3])
def test_sharing_keeps_a_connection_together_columns_or_pairs(tmp_path: Path, processes: int) -> None:
    """A chunk with an odd segment is read as pairs: its connections must land where the same
    connections go when read as columns (`part_of` and the vectorised hash agree)."""
    path = random_capture(tmp_path / "c.pcap", 5, 60)
    (chunk,) = list(read_chunks(read_tcp(path)))
    cols = chunk.columns
    assert cols is not None
    by_pairs = _owners(segments_of([chunk]), processes)
    for k in range(processes):
        rows = parallel.Share(k, processes).rows(cols.src, cols.sport, cols.dst, cols.dport)
        assert rows.tolist() == [proc == k for proc in by_pairs]
    assert len(set(by_pairs)) == processes  # every process got some
    owner: dict[tuple[tuple[str, int], ...], int] = {}
    for (_i, p), proc in zip(segments_of([chunk]), by_pairs, strict=True):
        key = tuple(sorted([(p.src, p.sport), (p.dst, p.dport)]))
        assert owner.setdefault(key, proc) == proc  # both directions, every segment: one process


def _mixed(path: Path, fmt: str) -> Path:
    """IPv4 connections with some IPv6 ones among them (odd segments: their chunks go as pairs),
    as pcap or as pcapng of several sections and interfaces, with Simple Packet Blocks."""
    rng = random.Random(7)
    convs = [
        (random_conversation(rng, (f"10.0.0.{k}", 20000 + k), ("10.1.0.2", 80), T0 + k / 4), k % 7 == 0)
        for k in range(1, 30)
    ]
    timed = sorted((s.t, scapy_packet(s, "ether", v6)) for c, v6 in convs for s in c.segs)
    wrpcap(str(path), [p for _t, p in timed], linktype=1)
    return path if fmt == "pcap" else _as_pcapng(path, path.with_suffix(".pcapng"), "<")


@pytest.mark.parametrize("walks", ["numpy", "plain", "compiled"])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("chunk", [1 << 22, 3000, 200])
def test_a_share_read_is_the_share_of_reading_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, walks: str, fmt: str, chunk: int
) -> None:
    """The reader keeps only a share's segments (`read_chunks`' filter): each at its position
    among all, columns or pairs, and the capture's counters as if it read everything."""
    path = _mixed(tmp_path / "m.pcap", fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])  # truncated too
    monkeypatch.setattr(columns, "CHUNK", chunk)
    how = None if walks == "numpy" else _walks(walks)

    def read(keep: RowFilter | None) -> tuple[list[tuple[int, TcpPacket]], tuple[object, ...]]:
        capture = read_tcp(path)
        got = segments_of(read_chunks(capture, how, keep))
        return got, (capture.packets, capture.tcp_packets, capture.truncated, capture.icmp_errors)

    every, counters = read(None)
    assert every == list(enumerate(read_tcp(path), 1))  # as the reference reader reads them
    assert any(":" in p.src for _i, p in every)
    owners = _owners(every, 3)
    for k in range(3):
        assert read(parallel.Share(k, 3)) == (
            [s for s, o in zip(every, owners, strict=True) if o == k],
            counters,
        )


def test_ipv6_connections_keep_together(tmp_path: Path) -> None:
    rng = random.Random(3)
    convs = [
        random_conversation(rng, (f"10.0.0.{k}", 20000 + k), ("10.1.0.2", 80), T0 + k) for k in range(1, 9)
    ]
    segs = sorted((s for c in convs for s in c.segs), key=lambda s: s.t)
    path = write_scapy(tmp_path / "v6.pcap", segs, v6=True)
    (chunk,) = list(read_chunks(read_tcp(path)))
    assert chunk.pairs is not None  # IPv6: the general decoder
    owner: dict[tuple[tuple[str, int], ...], int] = {}
    for (_i, p), proc in zip(chunk.pairs, _owners(chunk.pairs, 3), strict=True):
        key = tuple(sorted([(p.src, p.sport), (p.dst, p.dport)]))
        assert owner.setdefault(key, proc) == proc
    assert part_of("2001:db8::1", 1, "2001:db8::2", 2, 3) == part_of("2001:db8::2", 2, "2001:db8::1", 1, 3)


@pytest.mark.parametrize("processes", [2, 3])
def test_columns_and_pairs_chunks_shared_are_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    """IPv6 connections among IPv4 ones, in small chunks: each process reads every chunk, some as
    columns and some as pairs (a chunk with an IPv6 segment), and keeps its own connections of
    both kinds; together they are the one process's analysis."""
    rng = random.Random(5)
    convs = [
        (random_conversation(rng, (f"10.0.0.{k}", 20000 + k), ("10.1.0.2", 80), T0 + k / 4), k % 3 == 0)
        for k in range(1, 40)
    ]
    timed = sorted((s.t, scapy_packet(s, "ether", v6)) for c, v6 in convs for s in c.segs)
    path = tmp_path / "mixed.pcap"
    wrpcap(str(path), [p for _t, p in timed], linktype=1)
    monkeypatch.setattr(columns, "CHUNK", 1500)
    kinds = {chunk.pairs is not None for chunk in read_chunks(read_tcp(path))}
    assert kinds == {True, False}  # both kinds of chunk
    one = analyze_capture(read_tcp(path))
    assert any(":" in c.client for c in one.connections) and any("." in c.client for c in one.connections)
    assert analyze_shared(read_tcp(path), processes) == one


@pytest.mark.parametrize("processes", [2, 3])
def test_shared_analysis_is_the_single_process_analysis(tmp_path: Path, processes: int) -> None:
    path = random_capture(tmp_path / "c.pcap", 11, 150)
    one = analyze_capture(read_tcp(path))
    shared = analyze_shared(read_tcp(path), processes)
    assert len(one.connections) > 100
    assert shared == one
    assert [c.stream for c in shared.connections] == list(range(len(one.connections)))
    assert one.connections == analyze(read_tcp(path))  # and the iterable path agrees too


def test_a_capture_growing_during_the_analysis_is_read_to_where_it_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every process reads the file itself: one still being written (tcpdump -w) must be read by
    all to the same end, where it ended when the analysis started. Here the parent appends
    records (whole ones: more connections) as it starts reading, after the children started."""
    path = random_capture(tmp_path / "c.pcap", 4, 60)
    more = random_capture(tmp_path / "more.pcap", 9, 60).read_bytes()[24:]  # records, no header
    one = analyze_capture(read_tcp(path))
    real = parallel.read_chunks
    parent = os.getpid()

    def growing(
        capture: TcpCapture, walks: Walks | None = None, keep: RowFilter | None = None
    ) -> Iterator[Chunk]:
        if os.getpid() == parent:
            with path.open("ab") as f:
                f.write(more)
        return real(capture, walks, keep)

    monkeypatch.setattr(parallel, "read_chunks", growing)
    capture = read_tcp(path)
    assert analyze_shared(capture, 3) == one
    assert capture.limit is None  # not left bounded
    assert len(analyze_capture(read_tcp(path)).connections) > len(one.connections)  # it did grow


def test_a_truncated_capture_is_reported_once(tmp_path: Path) -> None:
    path = random_capture(tmp_path / "c.pcap", 2, 40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])
    one = analyze_capture(read_tcp(path))
    shared = analyze_shared(read_tcp(path), 2)
    assert one.truncated and one.problems
    assert shared == one


def test_a_failing_child_is_an_error_not_a_partial_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = random_capture(tmp_path / "c.pcap", 2, 20)
    real = parallel.summarize_chunks
    parent = os.getpid()

    def broken(chunks: Iterable[Chunk], passing: Pass) -> list[ConnectionSummary]:
        if os.getpid() != parent:
            raise RuntimeError("boom")
        return real(chunks, passing)

    monkeypatch.setattr(parallel, "summarize_chunks", broken)
    with pytest.raises(TcpscenError, match="RuntimeError: boom"):
        analyze_shared(read_tcp(path), 2)


def test_a_child_that_dies_does_not_hang_the_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = random_capture(tmp_path / "c.pcap", 3, 150)
    monkeypatch.setattr(columns, "CHUNK", 2000)  # many chunks
    real = parallel.summarize_chunks
    parent = os.getpid()

    def dies(chunks: Iterable[Chunk], passing: Pass) -> list[ConnectionSummary]:
        if os.getpid() != parent:
            os._exit(9)
        return real(chunks, passing)

    monkeypatch.setattr(parallel, "summarize_chunks", dies)
    with pytest.raises(TcpscenError, match="ended"):
        analyze_shared(read_tcp(path), 2)


def test_small_captures_stay_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = random_capture(tmp_path / "c.pcap", 2, 20)
    assert auto_processes(read_tcp(path)) == 1
    monkeypatch.setattr(sizing, "SHARED_BYTES", 1)
    assert 1 <= auto_processes(read_tcp(path)) <= sizing.MAX_AUTO
    rng = random.Random(1)
    c = random_conversation(rng, ("10.0.0.1", 40000), ("10.1.0.2", 80), T0)
    null = write_scapy(tmp_path / "null.pcap", c.segs, link="null")
    assert auto_processes(read_tcp(null)) == 1  # read one by one: every process would read it all


@pytest.mark.parametrize("mode", [["--json"], []])
def test_the_command_says_the_same_with_several_processes(tmp_path: Path, mode: list[str]) -> None:
    """Rendered where analysed (JSON, or the summary off a terminal), numbered in the parent."""
    path = random_capture(tmp_path / "c.pcap", 8, 150)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])  # truncated, too: the warning and the counters
    settings = ["--sysctl", "net.ipv4.tcp_retries2=4", "--sockopt", "TCP_KEEPIDLE=1"]
    one = cli(*mode, "-j", "1", *settings, path)
    three = cli(*mode, "-j", "3", *settings, path)
    assert one.returncode == three.returncode == 0, one.stderr + three.stderr
    assert "truncated" in one.stdout or "truncated" in one.stderr
    assert "model:" in one.stdout or '"predictions": [{' in one.stdout  # predictions were made
    assert three.stdout == one.stdout
    assert three.stderr == one.stderr
