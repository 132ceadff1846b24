"""`bounded.upto`: a capture read no further than a size, by both readers."""

from __future__ import annotations

from pathlib import Path

from orchestrator.pcap.bounded import upto
from orchestrator.pcap.chunks import read_chunks
from orchestrator.pcap.reader import read_tcp
from orchestrator.tcp.analysis import analyze_capture
from tests.helpers.pcaps import random_capture


def test_reads_stop_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 100)
    with upto(path.open("rb"), 1000) as f:
        assert f.read(10) == bytes(range(10))
        rest = f.read(1 << 20)
        assert len(rest) == 990 and f.read(5) == b""
    with upto(path.open("rb"), 1 << 30) as f:  # beyond the end: the end
        assert len(f.read()) == 25600


def test_a_bounded_capture_is_the_file_cut_there(tmp_path: Path) -> None:
    """A limit inside a record: both readers see the file as if it ended there (truncated)."""
    path = random_capture(tmp_path / "c.pcap", 3, 60)
    data = path.read_bytes()
    cut = len(data) * 2 // 3 + 7
    short = tmp_path / "cut" / "c.pcap"  # the same name: the evidence names its file
    short.parent.mkdir()
    short.write_bytes(data[:cut])
    expected = analyze_capture(read_tcp(short), vectorised=False)
    assert expected.truncated
    for vectorised in (False, True):
        capture = read_tcp(path)
        capture.limit = cut
        assert analyze_capture(capture, vectorised=vectorised) == expected
    capture = read_tcp(path)
    capture.limit = cut
    chunks = list(read_chunks(capture))
    read = sum(len(c.columns.pos) if c.columns is not None else len(c.pairs or []) for c in chunks)
    assert read == expected.tcp_packets and capture.truncated
