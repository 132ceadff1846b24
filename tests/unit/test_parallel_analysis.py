"""Sharing a capture between processes gives exactly what one process gives."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from pathlib import Path

import pytest

from orchestrator.errors import TcpscenError
from orchestrator.verdict import columns, parallel
from orchestrator.verdict.analysis import analyze, analyze_capture
from orchestrator.verdict.columns import Chunk
from orchestrator.verdict.parallel import analyze_shared, auto_processes
from orchestrator.verdict.pcapfile import part_of, read_tcp
from orchestrator.verdict.summary import ConnectionSummary
from tests.unit.pcaps import T0, Conv, random_conversation, write_fast, write_scapy
from tests.unit.test_analyze_cli import cli


def _capture(path: Path, seed: int, n: int) -> Path:
    """Many odd conversations, some reusing the previous one's 4-tuple."""
    rng = random.Random(seed)
    convs: list[Conv] = []
    for k in range(n):
        if convs and rng.random() < 0.25:
            prev = convs[-1]
            convs.append(random_conversation(rng, prev.client, prev.server, prev.t + 0.001))
        else:
            client = (f"10.0.{k % 200}.1", 10000 + k)
            convs.append(random_conversation(rng, client, ("10.1.0.2", 80), T0 + rng.random()))
    return write_fast(path, sorted((s for c in convs for s in c.segs), key=lambda s: s.t))


@pytest.mark.parametrize("parts", [2, 3])
def test_parts_split_the_segments_by_connection_and_keep_positions(tmp_path: Path, parts: int) -> None:
    path = _capture(tmp_path / "c.pcap", 5, 60)
    whole = list(enumerate(read_tcp(path), 1))
    pieces = [list(read_tcp(path).pairs(k, parts)) for k in range(parts)]
    assert all(pieces), "every part got some connections"
    assert sorted((q for piece in pieces for q in piece), key=lambda q: q[0]) == whole
    for piece in pieces:  # both directions of a connection land in the same part
        for _i, p in piece:
            assert part_of(p.src, p.sport, p.dst, p.dport, parts) == part_of(
                p.dst, p.dport, p.src, p.sport, parts
            )


def test_ipv6_and_slow_path_segments_follow_the_same_rule(tmp_path: Path) -> None:
    rng = random.Random(3)
    convs = [
        random_conversation(rng, (f"10.0.0.{k}", 20000 + k), ("10.1.0.2", 80), T0 + k) for k in range(1, 9)
    ]
    segs = sorted((s for c in convs for s in c.segs), key=lambda s: s.t)
    for v6 in (False, True):
        # VLAN tags and IPv6 take the reader's general decoder, not its IPv4 fast path.
        path = write_scapy(
            tmp_path / f"v{v6}.pcapng", segs, link="ether" if v6 else "vlan", fmt="pcapng", v6=v6
        )
        whole = list(enumerate(read_tcp(path), 1))
        got = sorted((q for k in range(3) for q in read_tcp(path).pairs(k, 3)), key=lambda q: q[0])
        assert got == whole


@pytest.mark.parametrize("processes", [2, 3])
def test_shared_analysis_is_the_single_process_analysis(tmp_path: Path, processes: int) -> None:
    path = _capture(tmp_path / "c.pcap", 11, 150)
    one = analyze_capture(read_tcp(path))
    shared = analyze_shared(read_tcp(path), processes)
    assert len(one.connections) > 100
    assert shared == one
    assert [c.stream for c in shared.connections] == list(range(len(one.connections)))
    assert one.connections == analyze(read_tcp(path))  # and the iterable path agrees too


def test_a_truncated_capture_is_reported_once(tmp_path: Path) -> None:
    path = _capture(tmp_path / "c.pcap", 2, 40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])
    one = analyze_capture(read_tcp(path))
    shared = analyze_shared(read_tcp(path), 2)
    assert one.truncated and one.problems
    assert shared == one


def test_a_failing_child_is_an_error_not_a_partial_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _capture(tmp_path / "c.pcap", 2, 20)
    real = parallel.summarize_chunks
    parent = os.getpid()

    def broken(chunks: Iterable[Chunk]) -> list[ConnectionSummary]:
        if os.getpid() != parent:
            raise RuntimeError("boom")
        return real(chunks)

    monkeypatch.setattr(parallel, "summarize_chunks", broken)
    with pytest.raises(TcpscenError, match="RuntimeError: boom"):
        analyze_shared(read_tcp(path), 2)


def test_a_child_that_dies_with_work_queued_does_not_hang_the_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _capture(tmp_path / "c.pcap", 3, 150)
    monkeypatch.setattr(columns, "CHUNK", 2000)  # many chunks: more than the queue holds
    real = parallel.summarize_chunks
    parent = os.getpid()

    def dies(chunks: Iterable[Chunk]) -> list[ConnectionSummary]:
        if os.getpid() != parent:
            os._exit(9)
        return real(chunks)

    monkeypatch.setattr(parallel, "summarize_chunks", dies)
    with pytest.raises(TcpscenError, match="ended"):
        analyze_shared(read_tcp(path), 2)


def test_small_captures_stay_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _capture(tmp_path / "c.pcap", 2, 20)
    assert auto_processes(read_tcp(path)) == 1
    monkeypatch.setattr(parallel, "MIN_BYTES", 1)
    assert 1 <= auto_processes(read_tcp(path)) <= parallel.MAX_AUTO
    rng = random.Random(1)
    c = random_conversation(rng, ("10.0.0.1", 40000), ("10.1.0.2", 80), T0)
    null = write_scapy(tmp_path / "null.pcap", c.segs, link="null")
    assert auto_processes(read_tcp(null)) == 1  # read one by one: dealing out would cost more


@pytest.mark.parametrize("mode", [["--json"], []])
def test_the_command_says_the_same_with_several_processes(tmp_path: Path, mode: list[str]) -> None:
    """Rendered where analysed (JSON, or the summary off a terminal), numbered in the parent."""
    path = _capture(tmp_path / "c.pcap", 8, 150)
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
