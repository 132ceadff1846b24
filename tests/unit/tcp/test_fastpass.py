"""The compiled pass (`fastpass` over `arrayloop`) gives exactly what the reference loop gives.

Each test runs the array loop twice where it can: as plain Python (always: the logic), and
compiled by numba (the shipped path; skipped only where numba is not installed, and CI
installs it). The reference is the loop over the reference reader, itself checked against
tshark in `test_analysis`.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap
from typer.testing import CliRunner

from orchestrator.cli.app import app
from orchestrator.pcap import columns, walk
from orchestrator.pcap.chunks import Walks, read_chunks
from orchestrator.pcap.reader import TcpPacket, read_tcp
from orchestrator.tcp import arrayloop, compiled, fastpass, loop, parallel, segments, sizing
from orchestrator.tcp import flows as fl
from orchestrator.tcp.analysis import Analysis, analysis_of, analyze_capture
from orchestrator.tcp.fastpass import PLAIN, Kernels, analyze_arrays
from orchestrator.tcp.loop import summarize_pass
from tests.helpers.pcaps import T0, random_capture, random_conversation, write_scapy
from tests.unit.tcp.test_vector import _as_pcapng, _bench

HAS_NUMBA = compiled.available()
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the `fast` extra)")


def _kernels(kind: str) -> Kernels:
    if kind == "plain":
        return PLAIN
    if not HAS_NUMBA:
        pytest.skip("numba is not installed (the `fast` extra)")
    return compiled.compiled()[1]


KINDS = ["plain", "compiled"]


def _fast(path: Path, kernels: Kernels) -> Analysis:
    capture = read_tcp(path)
    conns = summarize_pass(lambda: analyze_arrays(read_chunks(capture), kernels))
    return analysis_of(capture, conns)


def _reference(path: Path) -> Analysis:
    return analyze_capture(read_tcp(path), vectorised=False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1 << 22, 700])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_odd_conversations_in_small_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, chunk: int, kind: str
) -> None:
    path = random_capture(tmp_path / "r.pcap", seed, 80)
    monkeypatch.setattr(columns, "CHUNK", chunk)
    reference = _reference(path)
    assert len(reference.connections) > 50
    assert _fast(path, _kernels(kind)) == reference


@pytest.mark.parametrize("seed", range(10, 22))
def test_more_seeds_compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    path = random_capture(tmp_path / "r.pcap", seed, 40)
    monkeypatch.setattr(columns, "CHUNK", random.Random(seed).choice([500, 3000, 1 << 22]))
    assert _fast(path, _kernels("compiled")) == _reference(path)


@pytest.mark.parametrize("kind", KINDS)
def test_small_caps_are_kept_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """The memory bounds (unacknowledged segments, runs of retransmissions) cut the same way."""
    path = random_capture(tmp_path / "r.pcap", 5, 60)
    monkeypatch.setattr(loop, "MAX_UNACKED", 3)
    monkeypatch.setattr(fl, "MAX_UNACKED", 2)
    monkeypatch.setattr(fl, "MAX_RUNS", 2)
    monkeypatch.setattr(segments, "MAX_RUNS", 2)
    reference = _reference(path)
    assert _fast(path, _kernels(kind)) == reference


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", ["many", "long"])
def test_a_busy_capture(tmp_path: Path, shape: str, kind: str) -> None:
    """The benchmark's own traffic: retransmissions, keep-alives, zero windows, closes."""
    path = tmp_path / f"{shape}.pcap"
    _bench().write_capture(path, 60_000 if kind == "compiled" else 8_000, shape, seed=3)
    reference = _reference(path)
    assert sum(c.retransmissions.client + c.retransmissions.server for c in reference.connections) > 100
    assert _fast(path, _kernels(kind)) == reference


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("link", "fmt", "v6"), [("vlan", "pcap", False), ("ether", "pcap", True), ("sll2", "pcapng", False)]
)
def test_what_the_fast_layout_cannot_read(tmp_path: Path, link: str, fmt: str, v6: bool, kind: str) -> None:
    """Chunks of pairs (IPv6, VLAN, ...) go through the same array loop."""
    rng = random.Random(9)
    convs = [
        random_conversation(rng, (f"10.0.0.{k}", 30000 + k), ("10.1.0.2", 80), T0 + k / 10)
        for k in range(1, 6)
    ]
    segs = sorted((s for c in convs for s in c.segs), key=lambda s: s.t)
    path = write_scapy(tmp_path / f"x.{fmt}", segs, link=link, fmt=fmt, v6=v6)  # type: ignore[arg-type]
    assert _fast(path, _kernels(kind)) == _reference(path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_connection_to_itself(tmp_path: Path, kind: str) -> None:
    """A 4-tuple that is its own reverse: the loop's dictionary holds one direction for both."""
    rng = random.Random(4)
    convs = [
        random_conversation(rng, ("10.0.0.1", 5000), ("10.0.0.1", 5000), T0),
        random_conversation(rng, ("10.0.0.2", 40000), ("10.1.0.2", 80), T0 + 0.5),
    ]
    segs = sorted((s for c in convs for s in c.segs), key=lambda s: s.t)
    path = write_scapy(tmp_path / "self.pcap", segs)
    assert _fast(path, _kernels(kind)) == _reference(path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_truncated_capture(tmp_path: Path, kind: str) -> None:
    path = random_capture(tmp_path / "r.pcap", 6, 30)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 25])
    reference = _reference(path)
    assert reference.truncated and reference.problems
    assert _fast(path, _kernels(kind)) == reference


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1 << 22, 3000])
def test_pcapng_sections_interfaces_and_simple_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, kind: str
) -> None:
    path = _as_pcapng(random_capture(tmp_path / "r.pcap", 12, 60), tmp_path / "r.pcapng", "<")
    monkeypatch.setattr(columns, "CHUNK", chunk)
    assert _fast(path, _kernels(kind)) == _reference(path)


@needs_numba
def test_big_captures_take_the_compiled_pass_small_ones_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = random_capture(tmp_path / "r.pcap", 7, 40)
    capture = read_tcp(path)
    assert compiled.plan_for(capture) is compiled.PLAIN_PLAN  # small: numpy and Python
    monkeypatch.setattr(compiled, "MIN_BYTES", 0)
    assert compiled.plan_for(capture).walks is not None
    monkeypatch.setenv("TCPSCEN_NO_JIT", "1")
    assert compiled.plan_for(capture) is compiled.PLAIN_PLAN


@needs_numba
@pytest.mark.parametrize("processes", [1, 2, 3])
def test_shared_compiled_analysis_is_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    path = random_capture(tmp_path / "r.pcap", 8, 100)
    monkeypatch.setattr(compiled, "MIN_BYTES", 0)
    monkeypatch.setattr(columns, "CHUNK", 5000)
    reference = _reference(path)
    got = parallel.analyze_shared(read_tcp(path), processes)
    assert got == reference


@needs_numba
@pytest.mark.parametrize("mode", [["--json"], []])
def test_the_command_says_the_same_with_and_without_numba(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: list[str]
) -> None:
    """Byte for byte, with one process and two (in this process: the threshold lowered)."""
    path = tmp_path / "big.pcap"
    _bench().write_capture(path, 40_000, "many", seed=5)
    monkeypatch.setattr(sizing, "SHARED_BYTES", 0)

    def run(*extra: str, jit: bool) -> str:
        monkeypatch.setattr(compiled, "MIN_BYTES", 0 if jit else 1 << 62)
        done = CliRunner().invoke(app, ["analyze", *mode, *extra, str(path)])
        assert done.exit_code == 0, done.output
        return done.stdout

    plain = run("-j", "1", jit=False)
    assert '"retransmissions"' in plain or "retransmissions" in plain
    assert run("-j", "1", jit=True) == plain
    assert run("-j", "2", jit=True) == plain
    assert run("-j", "2", jit=False) == plain


def _walks(kind: str) -> Walks:
    if kind == "plain":
        return Walks(walk.walk_records, walk.walk_epbs, walk.decode_fields, walk.gather_slices)
    if not HAS_NUMBA:
        pytest.skip("numba is not installed (the `fast` extra)")
    return compiled.compiled()[0]


def _read(path: Path, walks: Walks | None) -> tuple[list[tuple[int, TcpPacket]], tuple[object, ...]]:
    """Every segment a column reader gives, and the capture's counters."""
    capture = read_tcp(path)
    got: list[tuple[int, TcpPacket]] = []
    for chunk in read_chunks(capture, walks):
        if chunk.pairs is not None:
            got.extend(chunk.pairs)
        elif chunk.columns is not None:
            cols = chunk.columns
            got.extend(zip(cols.pos.tolist(), cols.packets(np.arange(len(cols.pos))), strict=True))
    counters = (capture.packets, capture.tcp_packets, capture.truncated, capture.problem, capture.icmp_errors)
    return got, counters


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [1 << 22, 3000, 200])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng-le", "pcapng-be"])
@pytest.mark.parametrize("cut", [0, 25, 7])
def test_the_framing_walks_read_as_the_framing_loops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, chunk: int, fmt: str, cut: int
) -> None:
    path = random_capture(tmp_path / "r.pcap", 13, 40)
    if fmt != "pcap":
        path = _as_pcapng(path, tmp_path / "r.pcapng", "<" if fmt == "pcapng-le" else ">")
    if cut:
        path.write_bytes(path.read_bytes()[:-cut])
    monkeypatch.setattr(columns, "CHUNK", chunk)
    walks = _walks(kind)
    assert _read(path, walks) == _read(path, None)


@pytest.mark.parametrize("kind", KINDS)
def test_a_corrupt_record_stops_both_walks_alike(tmp_path: Path, kind: str) -> None:
    path = random_capture(tmp_path / "r.pcap", 14, 10)
    data = bytearray(path.read_bytes())
    data[24 + 8 : 24 + 12] = (1 << 30).to_bytes(4, "little")  # the first record's captured length
    path.write_bytes(bytes(data))
    reference = _read(path, None)
    assert reference[1][2]  # truncated
    assert _read(path, _walks(kind)) == reference


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("link", ["ether", "vlan", "sll", "sll2", "raw", "null", "ipv4"])
@pytest.mark.parametrize("fmt", ["pcap", "pcap-ns", "pcapng"])
@pytest.mark.parametrize("v6", [False, True])
def test_the_compiled_decoding_reads_every_link_type_as_numpy(
    tmp_path: Path, kind: str, link: str, fmt: str, v6: bool
) -> None:
    if v6 and link == "ipv4":
        pytest.skip("an IPv4 link type carries no IPv6")
    rng = random.Random(5)
    c = random_conversation(rng, ("10.0.0.1", 40000), ("10.1.0.2", 80), T0)
    path = write_scapy(tmp_path / f"x.{fmt}", c.segs, link=link, fmt=fmt, v6=v6)  # type: ignore[arg-type]
    assert _read(path, _walks(kind)) == _read(path, None)


def test_a_numba_that_fails_leaves_the_plain_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = random_capture(tmp_path / "r.pcap", 3, 10)
    monkeypatch.setattr(compiled, "MIN_BYTES", 0)
    monkeypatch.setattr(compiled, "available", lambda: True)

    def broken() -> None:
        raise ImportError("numba needs another numpy")

    monkeypatch.setattr(compiled, "compiled", broken)
    assert compiled.plan_for(read_tcp(path)) is compiled.PLAIN_PLAN


def _spy_on_states(monkeypatch: pytest.MonkeyPatch) -> list[fastpass._State]:
    """The array loop's states made from now on, to read their counters afterwards."""
    made: list[fastpass._State] = []

    class Spy(fastpass._State):
        def __init__(self, kernels: Kernels) -> None:
            super().__init__(kernels)
            made.append(self)

    monkeypatch.setattr(fastpass, "_State", Spy)
    return made


@pytest.mark.parametrize("kind", KINDS)
def test_cleared_runs_are_freed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Memory stays bounded as the loop's does: a direction's runs of retransmissions, once
    MAX_RUNS of them are cleared, free their rows for the next ones."""
    path = tmp_path / "long.pcap"
    _bench().write_capture(path, 40_000 if kind == "compiled" else 8_000, "long", seed=4)
    monkeypatch.setattr(fl, "MAX_RUNS", 3)
    monkeypatch.setattr(segments, "MAX_RUNS", 3)
    made = _spy_on_states(monkeypatch)
    reference = _reference(path)
    retransmitted = sum(c.retransmissions.client + c.retransmissions.server for c in reference.connections)
    assert retransmitted > 100
    assert _fast(path, _kernels(kind)) == reference
    assert int(made[0].counts[arrayloop.N_RUNS]) <= 16 * 4  # 8 connections, two directions, 3 runs + 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_chunk_of_first_retransmissions_has_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The most evidence a segment keeps: a first retransmission whose original came in an
    earlier chunk keeps three frames (the run's two sends, the direction's own list). A chunk of
    nothing else, as a one-sided capture after an outage gives, must fit (it overran the arrays:
    IndexError in Python, memory corruption compiled)."""
    conns = 300
    pkts = []
    for t in (0.0, 1.0):  # every connection's segment, then each sent again, a chunk each
        for k in range(conns):
            ip = IP(src=f"10.0.{k // 250}.{k % 250 + 1}", dst="10.1.0.2")
            p = Ether() / ip / TCP(sport=40000, dport=80, seq=1000, ack=5000, flags="PA") / (b"x" * 100)
            p.time = T0 + t + k / 1e5
            pkts.append(p)
    path = tmp_path / "one_sided.pcap"
    wrpcap(str(path), pkts)
    monkeypatch.setattr(columns, "CHUNK", 170 * conns)  # about one round a chunk
    reference = _reference(path)
    assert sum(c.retransmissions.client + c.retransmissions.server for c in reference.connections) == conns
    assert all(len(c.backoff_frames) == 2 for c in reference.connections)
    assert _fast(path, _kernels(kind)) == reference


@pytest.mark.parametrize("kind", KINDS)
def test_retransmission_evidence_is_capped_and_freed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The loop keeps a retransmission's evidence itself (each direction's first frames, each
    run's sends): capped as the reference caps it, and a cleared run's frames are reused, so
    that the frames kept stay bounded however many segments are retransmitted."""
    path = tmp_path / "long.pcap"
    _bench().write_capture(path, 40_000 if kind == "compiled" else 8_000, "long", seed=4)
    for module in (fl, segments):
        monkeypatch.setattr(module, "MAX_RUNS", 3)
        monkeypatch.setattr(module, "MAX_EVIDENCE", 2)
    made = _spy_on_states(monkeypatch)
    reference = _reference(path)
    runs = [c for c in reference.connections if len(c.backoff_frames) == 3]
    assert runs, "no segment sent three times or more: the cap is not tested"
    assert all(len(c.retransmission_frames.client) <= 2 for c in reference.connections)
    retransmitted = sum(c.retransmissions.client + c.retransmissions.server for c in reference.connections)
    assert _fast(path, _kernels(kind)) == reference
    # 16 directions, each: 2 frames of its own, and 3 live runs + the best, of 3 sends each.
    bound = 16 * (2 + 4 * 3)
    assert retransmitted > 2 * bound  # without reuse, every retransmission would keep a frame
    assert int(made[0].counts[arrayloop.N_X]) <= bound


ROOT = Path(__file__).resolve().parents[3]
RECORDED = sorted(ROOT.glob("tests/**/recorded/**/*.pcap*"))


@pytest.mark.parametrize("kind", KINDS)
def test_every_recorded_real_capture_reads_the_same_in_every_pass(kind: str) -> None:
    # The real captures behind the verdict tests: facts the summaries read of retransmissions'
    # flags (stand-ins here, with none) once made the compiled pass differ on six of them. The
    # column reader and vectorised pass too (this package's conftest takes them for any size).
    assert len(RECORDED) > 50
    kernels = _kernels(kind)
    differ = []
    for path in RECORDED:
        reference = _reference(path)
        if _fast(path, kernels) != reference or analyze_capture(read_tcp(path)) != reference:
            differ.append(path.name)
    assert not differ
