"""Both ends probe, and only one direction is cut: recorded in the netns harness (the client
with keep-alive 3 s / 1 s / 3, the server with 1 s / 1 s / 10, w dropping a->b after the
handshake). The client's capture has the server's probes arriving and the client answering
them (the answers are lost), and the client's own probes, never answered.

The peer's own probe is no answer: it is out of the window, Linux drops it
(`tcp_validate_incoming`) and the keep-alive timer keeps counting. Measured: the client reset
the connection 3 s + 3 x 1 s after the handshake, its probes at 3.2, 4.2 and 5.3 s, whatever
the server's probes in between.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.pcap.reader import read_tcp
from orchestrator.tcp.analysis import analyze_capture, analyze_file
from tests.unit.tcp.test_fastpass import KINDS, _fast, _kernels

CAPTURE = Path(__file__).parent / "recorded" / "keepalive_both" / "a.pcap"
SETTINGS = parse_settings([], ["TCP_KEEPIDLE=3", "TCP_KEEPINTVL=1", "TCP_KEEPCNT=3"])


def test_the_peers_probes_do_not_answer_ours() -> None:
    (conn,) = analyze_file(CAPTURE).connections
    assert (conn.keepalive_probes.client, conn.keepalive_probes.server) == (3, 6)
    assert conn.keepalive_answered.client == 0  # the server only ever sent its own probes
    assert conn.keepalive_answered.server == 6  # the client's ACKs, on the wire where captured
    assert conn.keepalive_from == "client"  # the side heading for an abort
    assert conn.keepalive is not None and conn.keepalive.run_probes == 3
    assert conn.keepalive.first_after_idle_s == pytest.approx(3.2, abs=0.05)
    assert conn.keepalive.interval_s == pytest.approx(1.024, abs=0.01)
    assert any("RST from client after 3 unanswered keep-alive probes" in n for n in conn.notes)
    assert any("client sent 3 keep-alive probes" in n and "server never answered" in n for n in conn.notes)


def test_the_abort_is_predicted_from_the_last_real_segment() -> None:
    analysis = analyze_file(CAPTURE)
    (conn,) = analysis.connections
    (p,) = predict_connection(conn, lambda _: SETTINGS, analysis.icmp_errors)
    assert (p.kind, p.side, p.predicted_s) == ("keepalive-abort", "client", 6.0)
    assert p.within_tolerance is True and p.observed_s is not None
    assert p.observed_s == pytest.approx(6.28, abs=0.05)
    assert "other than the peer's own probes" in p.start


@pytest.mark.parametrize("kind", KINDS)
def test_every_pass_agrees(kind: str) -> None:
    reference = analyze_capture(read_tcp(CAPTURE), vectorised=False)
    assert analyze_capture(read_tcp(CAPTURE)) == reference
    assert _fast(CAPTURE, _kernels(kind)) == reference


MIDDLE = Path(__file__).parent / "recorded" / "keepalive_both" / "middle_any.pcap"


def test_a_lost_rst_is_no_answer_either() -> None:
    """Both ends probe through a full cut, captured in the middle on `any` (each segment seen
    twice before the cut): the client gives up and sends its RST, which the cut drops. The
    server never got it and went on probing: the RST answered none of its probes."""
    (conn,) = analyze_file(MIDDLE).connections
    assert conn.rst_from == "client"
    assert conn.keepalive_probes.server >= 3 and conn.keepalive_answered.server == 0
    assert any("server sent" in n and "client never answered" in n for n in conn.notes)


@pytest.mark.parametrize("kind", KINDS)
def test_every_pass_agrees_in_the_middle(kind: str) -> None:
    reference = analyze_capture(read_tcp(MIDDLE), vectorised=False)
    assert analyze_capture(read_tcp(MIDDLE)) == reference
    assert _fast(MIDDLE, _kernels(kind)) == reference


def test_the_side_that_reset_after_its_probes_tells_the_story_when_the_peers_probe_crossed_it() -> None:
    # The same case, another run: the server's 6th probe reached the client 94 us after the
    # client's keep-alive abort (RST+ACK), and the client's kernel, with no socket left, answered
    # it with an RST of no socket. Both sides' last probes are then unanswered; the client's
    # abort is still the story, and its prediction is the keep-alive abort.
    capture = CAPTURE.with_name("crossed_a.pcap")
    (conn,) = analyze_file(capture).connections
    assert conn.keepalive_from == "client" and conn.keepalive_reset is None
    found = predict_connection(conn, lambda _: SETTINGS, [], None)
    assert [(p.side, p.kind) for p in found] == [("client", "keepalive-abort")]
