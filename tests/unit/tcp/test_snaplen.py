"""A snap length that cuts the TCP header: those segments are not analysed (tshark cannot either),
and the analysis says how many, instead of reporting an empty capture as if it had no TCP.

Real captures (`recorded/snaplen/`, one exchange of 20 writes, 48 TCP segments, recorded in
network namespaces on Linux 6.18, each side's tcpdump at once): `tcpdump -i any -s 54` keeps 14
bytes of TCP behind the 20-byte cooked v2 header (cut before the window), `-s 66` 26 bytes, the
full one all; `-i eth0 -s 54` keeps the whole 20-byte TCP header behind Ethernet's 14.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.app import app
from orchestrator.pcap.links import LINKTYPE_ETHERNET, header_cut
from orchestrator.pcap.reader import read_tcp
from orchestrator.tcp.analysis import Analysis, analyze_capture

HERE = Path(__file__).resolve().parent / "recorded" / "snaplen"
SEGMENTS = 48


def _both(path: Path) -> tuple[Analysis, Analysis]:
    """The reference reader and loop, and the column reader (forced for every size here)."""
    return analyze_capture(read_tcp(path), vectorised=False), analyze_capture(read_tcp(path))


@pytest.mark.parametrize("name", ["any54.pcap", "any54.pcapng"])
def test_segments_whose_header_is_cut_are_counted_and_said(name: str) -> None:
    reference, columns = _both(HERE / name)
    assert columns == reference
    assert (reference.tcp_packets, reference.headers_cut, reference.connections) == (0, SEGMENTS, [])
    assert reference.problems == [
        f"{name}: {SEGMENTS} TCP segments not analysed: the snap length cut the TCP header "
        "(capture again with a larger one, e.g. tcpdump -s 128)"
    ]
    assert not reference.truncated  # every record is whole in the file: nothing is cut short there


@pytest.mark.parametrize("name", ["any66.pcap", "eth54.pcap", "anyfull.pcap", "anyfull.pcapng"])
def test_a_snap_length_that_keeps_the_header_loses_nothing(name: str) -> None:
    reference, columns = _both(HERE / name)
    assert columns == reference
    assert (reference.tcp_packets, reference.headers_cut, reference.problems) == (SEGMENTS, 0, [])
    full = analyze_capture(read_tcp(HERE / "anyfull.pcap"))
    assert [c.close for c in reference.connections] == [c.close for c in full.connections] == ["fin"]


def test_a_whole_frame_too_short_for_tcp_is_malformed_not_cut() -> None:
    # Ethernet + IPv4 (proto 6) + 10 bytes of TCP: cut when the frame was longer, not when it was all there.
    frame = bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 30, 0, 0, 0, 0, 64, 6]) + bytes(10) + bytes(10)
    assert header_cut(LINKTYPE_ETHERNET, frame, 0, len(frame), len(frame) + 40)
    assert not header_cut(LINKTYPE_ETHERNET, frame, 0, len(frame), len(frame))
    udp = frame[:23] + b"\x11" + frame[24:]
    assert not header_cut(LINKTYPE_ETHERNET, udp, 0, len(udp), len(udp) + 40)


def test_the_command_warns_without_calling_it_a_cut_file() -> None:
    result = CliRunner().invoke(app, ["analyze", str(HERE / "any54.pcap")])
    assert result.exit_code == 0, result.output
    assert "48 TCP segments not analysed" in result.output
    assert "what came before it was analysed" not in result.output
