"""Keep-alive probes the network duplicated (recorded/keepalive_duplicated, see its README): at
the receiver each probe arrives twice, microseconds apart. No keep-alive timer sends so soon (its
interval is 1 s at least), so the gap to a copy is no interval: the note read "then every 0 s".
The probe counts stay Wireshark's (each copy is a keep-alive to it)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from shutil import which

import pytest

from orchestrator.pcap.reader import read_tcp
from orchestrator.tcp.analysis import analyze, analyze_file

RECORDED = Path(__file__).parent / "recorded" / "keepalive_duplicated"


def _probe_note(name: str) -> str:
    (conn,) = analyze_file(RECORDED / name).connections
    (note,) = [n for n in conn.notes if n.startswith("client sent")]
    return note


def test_the_receivers_copies_are_named_not_an_interval() -> None:
    note = _probe_note("b.pcap")
    assert note.startswith(
        "client sent 4 keep-alive probes, the first after 1.033 s idle, then every 1.028 s "
        "(2 are copies of the probe before, within 85 us of it: no keep-alive timer sends so soon"
    )
    assert "every 0 s" not in note
    # the last "unanswered" probe is the copy of one the server answered (its answer came between)
    assert note.endswith("; server answered 2 probes, not the last 1: a copy of the one before")


def test_the_senders_own_probes_read_as_before() -> None:
    """The client's capture has each probe once (its answers twice): no copy to name."""
    note = _probe_note("a.pcap")
    assert note.startswith(
        "client sent 5 keep-alive probes, the first after 1.03 s idle, then every 1.024 s;"
    )
    assert "cop" not in note
    assert note.endswith("server answered 2 probes, then not the last 3 (every 1.024 s)")  # after the cut


def test_the_interval_leaves_out_the_gap_to_a_copy() -> None:
    """The server's capture up to its answer to the second probe (frame 15): the last probe is
    answered, so the interval is the median of every gap, one of them 85 us to a copy."""
    (conn,) = analyze([p for p in read_tcp(RECORDED / "b.pcap") if p.frame <= 15])
    assert conn.keepalive is not None and conn.keepalive.interval_s == pytest.approx(1.028, abs=0.001)
    (note,) = [n for n in conn.notes if n.startswith("client sent")]
    assert "then every 1.028 s (1 is a copy of the probe before, within 85 us of it" in note


@pytest.mark.skipif(which("tshark") is None, reason="needs tshark")
@pytest.mark.parametrize(("name", "probes"), [("a.pcap", 5), ("b.pcap", 4)])
def test_the_counts_stay_wiresharks(name: str, probes: int) -> None:
    (conn,) = analyze_file(RECORDED / name).connections
    out = subprocess.run(
        ["tshark", "-r", str(RECORDED / name), "-Y", "tcp.analysis.keep_alive"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert conn.keepalive_probes.client == len(out.splitlines()) == probes
