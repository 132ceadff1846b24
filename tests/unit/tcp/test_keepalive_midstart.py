"""Keep-alive probes in a capture begun after the connection's last data
(recorded/keepalive_midstart, see its README). Wireshark labels a probe by the segment before it,
which is not in the capture: the probes read as duplicate ACKs, and the notes said only "reset by
client" of the kernel's keep-alive abort (the app got ETIMEDOUT). The RST's seq, one above the
bare ACKs', shows they were probes (Linux sends a probe at snd_una - 1, its abort's RST at
snd_nxt), and an RST one probe interval after the last is the timer's abort."""

from __future__ import annotations

import subprocess
from pathlib import Path
from shutil import which

import pytest

from orchestrator.pcap.reader import RST, read_tcp
from orchestrator.tcp.analysis import analyze, analyze_file
from orchestrator.tcp.connection import ConnectionSummary

RECORDED = Path(__file__).parent / "recorded" / "keepalive_midstart"


def _conn(name: str) -> ConnectionSummary:
    (conn,) = analyze_file(RECORDED / name).connections
    return conn


def _probe_notes(conn: ConnectionSummary) -> list[str]:
    return [n for n in conn.notes if "cannot label" in n]


def test_the_unlabelled_probes_and_the_abort_are_named() -> None:
    conn = _conn("abort.pcap")
    assert conn.handshake == "missing" and conn.close == "rst" and conn.rst_from == "client"
    assert conn.keepalive_probes.client == 0  # Wireshark's count
    (note,) = _probe_notes(conn)
    assert note.startswith("client's 3 segments before its RST are bare ACKs one below the RST's sequence")
    assert "they came every 1.022 s; the RST came 1.024 s after the last, one interval" in note
    assert "client's keep-alive abort (its app gets ETIMEDOUT), not its app's reset" in note


def test_an_rst_off_the_interval_is_the_sockets_own() -> None:
    (note,) = _probe_notes(_conn("linger0.pcap"))
    assert note.startswith("client's 2 segments before its RST are bare ACKs")
    assert "0.469 s after the last, not one interval on: not the keep-alive timer's abort" in note
    assert "ETIMEDOUT" not in note


def test_the_whole_capture_labels_them_as_before() -> None:
    conn = _conn("abort_full.pcap")
    assert conn.keepalive_probes.client == 3
    assert _probe_notes(conn) == []
    assert "RST from client after 3 unanswered keep-alive probes (keepalive failure)" in conn.notes


def test_a_capture_that_ends_before_the_abort_claims_nothing() -> None:
    (conn,) = analyze([p for p in read_tcp(RECORDED / "abort.pcap") if not p.flags & RST])
    assert conn.close == "none" and _probe_notes(conn) == []


@pytest.mark.skipif(which("tshark") is None, reason="needs tshark")
def test_wireshark_labels_none_of_them() -> None:
    out = subprocess.run(
        ["tshark", "-r", str(RECORDED / "abort.pcap"), "-Y", "tcp.analysis.keep_alive"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == ""
