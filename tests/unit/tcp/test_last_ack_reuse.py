"""A 4-tuple used again while the server's socket of the earlier connection was in LAST_ACK
(recorded in netns, see recorded/last_ack_reuse/README.md): the new SYN got a challenge ACK
from that socket, and the client's RST for it, which Wireshark counts in the new tcp.stream,
ended the earlier connection: not its retransmission timer."""

from __future__ import annotations

from pathlib import Path

from orchestrator.kernel.predict import capture_end, predict_connection
from orchestrator.kernel.settings import KernelSettings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "last_ack_reuse"


def test_the_rst_for_the_challenge_ack_ends_the_server_in_last_ack() -> None:
    conns = analyze_file(RECORDED / "server.pcap").connections
    old, new = conns[0], conns[1]
    assert old.close == "fin" and old.rst_from == "client"
    assert old.reset_later is not None and old.reset_later.frame == 15
    assert not old.rsts.client and len(new.rsts.client) == 1  # counted where tshark counts it
    assert any(n.startswith("reset by client") and "LAST_ACK" in n for n in old.notes)
    # the server's FIN retransmissions stopped at the RST: no abort by its timer to predict
    end = capture_end(conns)
    assert predict_connection(old, lambda _side: KernelSettings(), capture_end=end) == []
    assert new.close == "fin" and new.rst_from is None


def test_where_the_fin_was_acknowledged_a_time_wait_answered() -> None:
    """The client's capture holds its ACK of the server's FIN (dropped beyond it): the earlier
    connection ended by FINs, and the RST changes nothing of it."""
    old, new, *_ = analyze_file(RECORDED / "client.pcap").connections
    assert old.close == "fin" and old.rst_from is None and old.reset_later is None
    assert not any("LAST_ACK" in n for n in old.notes)
    assert any("challenge ACK" in n for n in new.notes)


def test_the_new_connections_note_names_last_ack_among_who_answers_a_syn() -> None:
    """The challenge ACK to the new SYN came from the LAST_ACK socket (nstat TCPSYNChallenge 1),
    and the client's RST for it ended that socket: the note must name LAST_ACK beside
    established, in either capture (the client's cannot tell which it was)."""
    for name, frame in (("server.pcap", 15), ("client.pcap", 17)):
        new = analyze_file(RECORDED / name).connections[1]
        (note,) = [n for n in new.notes if "an earlier connection on this 4-tuple" in n]
        assert "in LAST_ACK, its FIN never acknowledged: a challenge ACK too" in note
        assert (
            f"RST (frame {frame}) answered that ACK, resetting the earlier connection if it was "
            "established or in LAST_ACK, not this one"
        ) in note
