"""Captures that hold every packet twice (recorded/copies, see its README): both ends' captures
merged (mergecap), or a router's two interfaces captured at once (dumpcap -i A -i B). Wireshark
counts each copy of a data segment as a retransmission, and so do the counts; the notes said
"client retransmitted N times" of a connection whose kernel retransmitted nothing (nstat:
TcpRetransSegs 0). The SYN's copy, microseconds after it with nothing between (no timer
re-sends a SYN within 1 s), tells that the capture holds copies; the retransmissions within
1 ms of their segment's previous send are then named copies, not re-sends."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from shutil import which

import pytest

from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.contract import connection_json

RECORDED = Path(__file__).parent / "recorded" / "copies"


def _conn(name: str) -> ConnectionSummary:
    (conn,) = analyze_file(RECORDED / name).connections
    return conn


def _notes_about_copies(conn: ConnectionSummary) -> list[str]:
    return [n for n in conn.notes if "twice" in n]


def test_both_ends_merged_are_copies_not_retransmissions() -> None:
    conn = _conn("merged.pcap")
    assert (conn.retransmissions.client, conn.retransmissions.server) == (13, 2)  # Wireshark's
    assert (conn.quick_retransmissions.client, conn.quick_retransmissions.server) == (13, 2)
    assert conn.copy_gap_s is not None and 0 < conn.copy_gap_s < 0.001
    first, client, server = _notes_about_copies(conn)
    assert first.startswith(
        "the capture holds this connection's packets twice: client's SYN came again 33 us after it"
    )
    assert client.startswith("Wireshark counts 13 retransmissions from client, every one within 1 ms")
    assert server.startswith("Wireshark counts 2 retransmissions from server, every one")
    assert not any(n.startswith("client retransmitted") for n in conn.notes)
    # The SYN's copy is no re-send (which would mean no RTT sample, the 3 s fallback RTO).
    assert conn.handshake_retransmitted.client == 0
    assert conn.backoff_gaps_s == [] and conn.backoff_frames == []
    copies = {"gap_s": conn.copy_gap_s, "retransmissions": {"client": 13, "server": 2}}
    assert connection_json(conn)["copies"] == copies


def test_one_ends_own_capture_holds_no_copies() -> None:
    conn = _conn("client.pcap")
    assert conn.copy_gap_s is None and conn.retransmissions.client == 0
    assert _notes_about_copies(conn) == []
    assert connection_json(conn)["copies"] is None


def test_a_routers_any_capture_keeps_the_real_backoff() -> None:
    """The router's -i any: the copies named, the 9 real retransmissions' backoff read without
    them (the copies' microsecond gaps were the run's first gaps), so the RTO model starts from
    the timer's first retransmission as in the client's own capture."""
    conn = _conn("router_any_cut.pcap")
    assert (conn.retransmissions.client, conn.quick_retransmissions.client) == (28, 19)
    (note,) = [n for n in _notes_about_copies(conn) if n.startswith("Wireshark counts 28")]
    assert "19 of them within 1 ms of their segment's previous send: copies of packets captured twice" in note
    assert "so the count is not what client re-sent" in note
    assert len(conn.backoff_gaps_s) == 9 and min(conn.backoff_gaps_s) > 0.2
    assert conn.backoff_gaps_s[0] == pytest.approx(0.413, abs=0.001)
    assert len(conn.head_frames) == 10  # the original and its 9 re-sends, no copy


@pytest.mark.skipif(which("tshark") is None, reason="needs tshark")
@pytest.mark.parametrize("name", ["merged.pcap", "router_any_cut.pcap"])
def test_the_counts_stay_wiresharks(name: str) -> None:
    conn = _conn(name)
    flagged = ["-Y", "tcp.analysis.retransmission", "-T", "fields", "-e", "ip.src"]
    out = subprocess.run(
        ["tshark", "-r", str(RECORDED / name), *flagged],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    client = conn.client.rsplit(":", 1)[0]
    assert conn.retransmissions.client == out.count(client)
    assert conn.retransmissions.server == len(out) - out.count(client)


def test_the_command_says_so(tmp_path: Path) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from orchestrator.cli.app import app  # noqa: PLC0415

    out = CliRunner().invoke(app, ["analyze", "--json", str(RECORDED / "merged.pcap")]).stdout
    (conn,) = json.loads(out)["connections"]
    assert conn["copies"]["retransmissions"] == {"client": 13, "server": 2}
    text = CliRunner().invoke(app, ["analyze", str(RECORDED / "merged.pcap")]).stdout
    assert "retransmissions 13/2 (copies 13/2)" in text


@pytest.mark.parametrize(
    "path",
    [
        "last_ack_reuse/client.pcap",
        "last_ack_reuse/server.pcap",
        "reboot_reconnect/a1.pcap",
        "reboot_reconnect/b1.pcap",
    ],
)
def test_a_syn_the_kernel_sent_again_at_once_is_no_copy(path: str) -> None:
    # Linux in SYN_SENT answers an unacceptable ACK (a reused 4-tuple's old socket, a rebooted
    # peer's) with an RST and sends its SYN again 2 jiffies later: 9 to 12 ms in these captures,
    # with the peer's ACK and the RST between. They were said to hold every packet twice.
    for conn in analyze_file(RECORDED.parent / path).connections:
        assert conn.copy_gap_s is None, (path, conn.client, conn.copy_gap_s)
        assert not _notes_about_copies(conn), conn.notes
