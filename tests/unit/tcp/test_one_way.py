"""Captures that hold only one direction of a connection (asymmetric routing, a tap on one
direction), recorded in netns (see recorded/one_way/README.md). The packets of the direction
that is there still tell what its kernel did: a SYN_SENT socket sends nothing but SYNs, so its
ACK, data, FIN or probe after the SYN means the handshake completed; and the timer retransmits
the oldest unacknowledged segment, so the most-retransmitted one is the head. Nothing can be
said of what the missing side answered, so no keep-alive count is judged."""

from __future__ import annotations

from pathlib import Path

from orchestrator.kernel.predict import KernelPrediction, capture_end, predict_connection
from orchestrator.kernel.settings import KernelSettings
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import ConnectionSummary, Side
from tests.helpers.pcaps import SYN, T0, Seg, write_fast

RECORDED = Path(__file__).parent / "recorded" / "one_way"
SETTINGS = KernelSettings(retries2=4, keepalive_time=1, keepalive_intvl=1, keepalive_probes=3)


def _kinds(name: str) -> list[tuple[str, list[str]]]:
    conns = analyze_file(RECORDED / name).connections
    return [(c.handshake, [p.kind for p in _predict(c, conns)]) for c in conns]


def _predict(c: ConnectionSummary, conns: list[ConnectionSummary]) -> list[KernelPrediction]:
    """As `tcpscen analyze` does: observed up to the capture's end."""
    return predict_connection(c, _settings, capture_end=capture_end(conns))


def _settings(_side: Side) -> KernelSettings:
    return SETTINGS


def test_a_client_only_capture_reads_the_handshake_done_and_the_rto_abort_as_both_directions_do() -> None:
    conns = analyze_file(RECORDED / "client_only.pcap").connections
    keepalive, sending, idle = conns
    assert [c.handshake for c in (keepalive, sending, idle)] == ["complete"] * 3
    assert {c.unseen for c in (keepalive, sending, idle)} == {"server"}
    assert not any("never answered" in n for c in (keepalive, sending, idle) for n in c.notes)
    (p,) = _predict(sending, conns)
    assert p.kind == "rto-abort" and p.within_tolerance
    # the same head, the same end as in the capture of both directions
    two_way = analyze_file(RECORDED / "both.pcap").connections
    (both,) = _predict(two_way[1], two_way)
    assert (p.start_time, p.predicted_s, p.observed_s) == (both.start_time, both.predicted_s, both.observed_s)
    # which probes the server answered is not in the capture: no count to judge
    assert _predict(keepalive, conns) == []
    assert any("whether it answered cannot be told" in n for n in keepalive.notes)


def test_a_server_only_capture_reads_the_handshake_done_and_predicts_nothing() -> None:
    conns = analyze_file(RECORDED / "server_only.pcap").connections
    assert [c.handshake for c in conns] == ["complete", "complete"]
    assert {c.unseen for c in conns} == {"client"}
    assert [_predict(c, conns) for c in conns] == [[], []]


def test_both_directions_are_judged_as_before() -> None:
    assert _kinds("both.pcap") == [
        ("complete", ["keepalive-abort"]),
        ("complete", ["rto-abort"]),
        ("complete", ["rto-abort"]),
    ]
    conns = analyze_file(RECORDED / "both.pcap").connections
    assert {c.unseen for c in conns} == {None}
    assert any("server answered 1 probe, then not the last 3" in n for n in conns[0].notes)


def test_a_silent_peer_is_not_a_missing_direction() -> None:
    """The server sent nothing during the capture, and the client's segments show no sign it
    did (the same ACK throughout): a cut, not a one-way capture."""
    (c,) = analyze_file(RECORDED / "silent_peer.pcap").connections
    assert c.unseen is None and c.handshake == "missing"
    assert "only client sent FIN; server never sent its own" in c.notes


def test_a_syn_that_carried_data_and_its_resends_alone_are_no_handshake(tmp_path: Path) -> None:
    """A fast-open SYN carries data: its own end is no sign of an established socket. Resent
    unanswered, it stays a handshake never answered."""
    sends = [Seg(T0 + t, "10.0.0.1", 40000, "10.0.0.2", 80, SYN, 1000, 0, length=20) for t in (0.0, 1.0, 3.0)]
    path = write_fast(tmp_path / "tfo.pcap", sends)
    (c,) = analyze_file(path).connections
    assert c.handshake == "partial" and c.unseen is None
    assert "the SYN was never answered: the handshake did not complete" in c.notes
