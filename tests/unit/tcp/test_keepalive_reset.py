"""An idle client with keep-alive whose peer "rebooted": recorded in netns (kernel 6.18; `a*`
the client's capture, `b*` the server's). The server's socket was aborted inside a cut (its RST
lost), then the cut healed, and the client's next probe got an RST from the socket-less server:
the client's app got ECONNRESET at that RST (recv). Run 1: keep-alive 2 s / 1 s / 3, the first
probe answered by the RST. Run 2: 1 s / 1 s / 5, two probes answered, the third by the RST.
No keep-alive abort follows: the connection was reset, not timed out."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "keepalive_reset"
SETTINGS = {
    "1": parse_settings([], ["TCP_KEEPIDLE=2", "TCP_KEEPINTVL=1", "TCP_KEEPCNT=3"]),
    "2": parse_settings([], ["TCP_KEEPIDLE=1", "TCP_KEEPINTVL=1", "TCP_KEEPCNT=5"]),
}
NAMES = ["a1.pcap", "b1.pcap", "a2.pcap", "b2.pcap"]


@pytest.mark.parametrize("name", NAMES)
def test_a_probe_answered_by_an_rst_is_not_unanswered(name: str) -> None:
    (conn,) = analyze_file(RECORDED / name).connections
    assert conn.close == "rst" and conn.rst_from == "server" and conn.keepalive_from == "client"
    (note,) = [n for n in conn.notes if n.startswith("client sent")]
    assert "never answered" not in note and "not the last" not in note
    expected = (
        "server answered it with an RST"
        if name[1] == "1"
        else "server answered 2 probes, then the last with an RST"
    )
    assert note.endswith(expected)


@pytest.mark.parametrize("name", NAMES)
def test_no_keepalive_abort_is_predicted_after_the_peers_rst(name: str) -> None:
    analysis = analyze_file(RECORDED / name)
    (conn,) = analysis.connections
    settings = SETTINGS[name[1]]
    assert predict_connection(conn, lambda _: settings, analysis.icmp_errors) == []
