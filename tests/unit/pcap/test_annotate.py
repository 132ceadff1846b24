"""Annotated pcapng: each note is a packet comment on the first packet at or after its time, as
Wireshark shows it; every record is kept, so frame numbers and Wireshark's analysis are unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.pcap.annotate import Note, annotate_capture
from orchestrator.pcap.reader import read_tcp
from tests.helpers.pcaps import T0, Conv, scapy_packet, tshark, tshark_fields
from tests.unit.pcap.test_reader import _epb, _idb, _shb


def story(tmp_path: Path, fmt: str) -> Path:
    c = Conv(t=T0)
    c.handshake()
    first = c.data("c", 100, dt=0.1)  # frame 4 at T0 + 0.101
    for gap in (0.2, 0.4, 0.8):
        c.retransmit("c", first, dt=gap)  # frames 5, 6, 7
    return c.write(tmp_path / f"a.{fmt}", link="sll2", fmt=fmt)


NOTES = [
    Note(T0 + 0.15, "server network cut"),  # between frames 4 and 5
    Note(T0 + 0.300999, "just before frame 5"),
    Note(T0 + 0.302, "a second one"),  # between 5 and 6: on 6, with nothing else
    Note(T0 + 9.0, "client app saw ETIMEDOUT"),  # after the end
    Note(T0 - 1.0, "traffic starts"),  # before the start
]
WHERE = {
    1: ["traffic starts (before the first packet of this capture)"],
    5: ["server network cut", "just before frame 5"],
    6: ["a second one"],
    7: ["client app saw ETIMEDOUT (after the last packet of this capture)"],
}


@pytest.mark.parametrize("fmt", ["pcap", "pcap-ns", "pcapng"])
def test_notes_land_on_their_packets(tmp_path: Path, fmt: str) -> None:
    src = story(tmp_path, fmt)
    out = annotate_capture(src, tmp_path / "out.pcapng", NOTES)
    assert out.frames == WHERE and out.unplaced == []
    # Every record is still there, in order, with the same time: frame numbers keep their meaning.
    before = [(p.frame, p.time_ns, p.seq, p.payload_len) for p in read_tcp(src)]
    after = list(read_tcp(out.path))
    assert [(p.frame, p.time_ns, p.seq, p.payload_len) for p in after] == before
    assert read_tcp(out.path).format == "pcapng"
    if not tshark():
        pytest.skip("tshark is not installed: cannot check with Wireshark")
    rows = tshark_fields(out.path, ["frame.number", "frame.comment"], "frame.comment")
    assert {int(n): text.split(",") for n, text in rows} == WHERE
    retx = "tcp.analysis.retransmission"
    assert tshark_fields(out.path, ["frame.number"], retx) == tshark_fields(src, ["frame.number"], retx)


def test_an_annotated_capture_can_be_annotated_again(tmp_path: Path) -> None:
    once = annotate_capture(story(tmp_path, "pcap"), tmp_path / "once.pcapng", NOTES[:1])
    twice = annotate_capture(once.path, tmp_path / "twice.pcapng", [Note(T0 + 0.15, "again")])
    assert twice.frames == {5: ["again"]}
    if not tshark():
        pytest.skip("tshark is not installed: cannot check with Wireshark")
    rows = tshark_fields(twice.path, ["frame.number", "frame.comment"], "frame.comment")
    assert rows == [["5", "server network cut,again"]]


def test_a_capture_without_packets_keeps_its_notes_aside(tmp_path: Path) -> None:
    src = Conv().write(tmp_path / "empty.pcap", link="sll2")
    out = annotate_capture(src, tmp_path / "out.pcapng", NOTES[:1])
    assert out.frames == {} and out.unplaced == NOTES[:1]
    assert list(read_tcp(out.path)) == []


def test_notes_are_placed_by_the_times_the_reader_gives(tmp_path: Path) -> None:
    """An interface's if_tsoffset shifts its packets' times: the notes follow the shifted times,
    those the verdict's evidence names."""
    c = Conv(t=T0)
    c.handshake()
    frames = [bytes(scapy_packet(s)) for s in c.segs]
    units = [round((s.t - 1000) * 1e6) for s in c.segs]  # microseconds, 1000 s before the epoch's
    src = tmp_path / "shifted.pcapng"
    src.write_bytes(
        b"".join(
            [_shb("<"), _idb("<", 1, tsoffset=1000)]
            + [_epb("<", 0, u, f) for u, f in zip(units, frames, strict=True)]
        )
    )
    times = [p.time for p in read_tcp(src)]
    assert times[0] == pytest.approx(c.segs[0].t, abs=1e-6)
    out = annotate_capture(src, tmp_path / "out.pcapng", [Note(times[1] - 1e-4, "just before frame 2")])
    assert out.frames == {2: ["just before frame 2"]}
