"""The bytes an RST with ACK acknowledges ("had received N bytes"), counted in the sequence
space unwrapped: past 2^32 the figure goes on, not modulo 4 GiB. A synthetic capture: the
server's ISN just short of 2^32, in-order data across it (the vectorised pass's runs), then
segments 1.5 GiB apart (the ones between not captured) until more than 4 GiB were acknowledged,
then the client's RST with ACK at its next sequence number; every pass says the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.flows import crossed
from tests.helpers.pcaps import Conv
from tests.unit.tcp.test_fastpass import KINDS, _fast, _kernels, _reference

GAP = 3 << 29  # 1.5 GiB: each jump under 2^31, so every pass reads it as forward


def _capture(tmp_path: Path, jumps: int, fin: bool = False) -> tuple[Path, int]:
    """The capture and the bytes the client's RST acknowledges."""
    isn = (1 << 32) - 3000
    c = Conv(client=("10.0.0.1", 40000), server=("10.0.0.2", 80), isn=(1000, isn))
    c.handshake()
    for _ in range(6):  # in order across 2^32
        c.data("s", 1000)
        c.ack("c")
    received = 6000
    for _ in range(jumps):
        c.send("s", "PA", 1000, dt=0.01, seq=c.nxt["s"] + GAP)
        c.ack("c")
        received += GAP + 1000
    if fin:
        c.fin("s")
        c.ack("c")
    c.rst("c")
    return c.write(tmp_path / "wrap.pcap"), received


def _received_note(notes: list[str]) -> str:
    (note,) = [n for n in notes if n.startswith("the RST carries an ACK")]
    return note


@pytest.mark.parametrize(("jumps", "fin"), [(0, False), (1, False), (3, False), (3, True)])
def test_the_bytes_an_rst_acknowledges_go_past_4_gib(tmp_path: Path, jumps: int, fin: bool) -> None:
    path, received = _capture(tmp_path, jumps, fin)
    assert (received > 1 << 32) is (jumps == 3)
    (conn,) = analyze_file(path).connections
    assert (conn.close, conn.rst_from) == ("rst", "client")
    assert f"client had received {received} bytes from server" in _received_note(conn.notes)


@pytest.mark.parametrize("kind", KINDS)
def test_every_pass_counts_the_wraps_alike(tmp_path: Path, kind: str) -> None:
    path, _ = _capture(tmp_path, 3)
    reference = _reference(path)
    assert _fast(path, _kernels(kind)) == reference
    assert analyze_file(path).connections == reference.connections


def test_a_crossing_is_counted_each_way() -> None:
    assert crossed(0xFFFFFF00, 0x100) == 1
    assert crossed(0x100, 0xFFFFFF00) == -1  # moved back (Wireshark restores nextseq on a SYN again)
    assert crossed(0x100, 0x200) == 0 and crossed(0x200, 0x100) == 0
    assert crossed(0, 0xFFFFFF00) == 0  # from unset
