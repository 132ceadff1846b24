"""Keep-alive over a path broken one way: recorded on the engine (kernel 6.18, tcpscen run of an
idle client with keep-alive 2 s / 1 s / 3, the server's outbound packets blackholed on the wire
0.5 s after connecting; the blackhole took effect just after the first probe, which was
answered). `server.pcap` shows all four probes answered, then the client's RST with ACK 1.024 s
after the last: the client's keep-alive abort (its app got ETIMEDOUT at that RST), since the
answers never reached it (`client.pcap`: the last three unanswered). The server's app got
ECONNRESET.

Before, the server's capture read that RST as "client's own socket aborted the connection ...
SO_LINGER 0 or a destroyed socket": the keep-alive abort was ruled out because its last probe
was answered there."""

from __future__ import annotations

from pathlib import Path

from orchestrator.pcap.reader import RST, read_tcp
from orchestrator.tcp.analysis import analyze, analyze_file

RECORDED = Path(__file__).parent / "recorded" / "keepalive_oneway"


def _rst_note(notes: list[str]) -> str:
    (note,) = [n for n in notes if n.startswith("the RST carries an ACK")]
    return note


def test_the_answered_side_reads_the_rst_as_the_probers_keepalive_abort() -> None:
    (conn,) = analyze_file(RECORDED / "server.pcap").connections
    assert (conn.close, conn.rst_from, conn.keepalive_probes.client) == ("rst", "client", 4)
    note = _rst_note(conn.notes)
    assert "came 1.024 s after client's last keep-alive probe" in note
    assert "client's keep-alive abort (its app gets ETIMEDOUT)" in note
    assert "server's answers never reached client" in note
    assert "SO_LINGER 0 or a destroyed socket" not in note
    assert note.endswith("server's app gets ECONNRESET")


def test_the_probers_own_capture_keeps_its_keepalive_failure_note() -> None:
    (conn,) = analyze_file(RECORDED / "client.pcap").connections
    assert any("RST from client after 3 unanswered keep-alive probes" in n for n in conn.notes)
    assert not [n for n in conn.notes if n.startswith("the RST carries an ACK")]


def test_an_rst_long_after_the_answered_probes_is_not_called_a_keepalive_abort() -> None:
    """The same packets with the RST 3 s later than one interval: not the keep-alive timer."""
    packets = list(read_tcp(RECORDED / "server.pcap"))
    late = 3_000_000_000
    moved = [p._replace(time=p.time + 3, time_ns=p.time_ns + late) if p.flags & RST else p for p in packets]
    (conn,) = analyze(moved)
    note = _rst_note(conn.notes)
    assert "keep-alive abort" not in note
    assert "SO_LINGER 0 or a destroyed socket" in note
