"""A spurious RTO, recorded in rv3- namespaces: a client writes 100 bytes every 200 ms; a
userspace forwarder delays everything client -> server by 1 s for 0.7 s from the 8th write.
The client's timer fired twice (TCPTimeouts 2, TcpRetransSegs 2) before the delayed original
reached the server, whose ACK then undid the loss (TCPLossUndo 1), and the two retransmissions
arrived after it as duplicates (TCPDSACKRecv 2). Nothing was lost, no ACK either."""

from __future__ import annotations

from pathlib import Path

from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "spurious_rto"


def test_the_senders_capture_counts_what_the_kernel_sent() -> None:
    (conn,) = analyze_file(RECORDED / "a.pcap").connections
    assert conn.retransmissions.client == 2 and conn.retransmissions.server == 0


def test_at_the_receiver_an_already_acknowledged_copy_names_every_cause() -> None:
    (conn,) = analyze_file(RECORDED / "b.pcap").connections
    assert conn.retransmissions.client == 2
    (note,) = [n for n in conn.notes if n.startswith("client retransmitted")]
    assert "server had acknowledged the segment before it came again" in note
    assert "did not get back" not in note  # they did: the client's capture has the ACK
    assert "delayed past the timer" in note and "duplicated" in note


def test_the_run_ends_as_it_did_in_order() -> None:
    """At the receiver the ACK came before both copies and again after the last (a D-SACK);
    at the sender the ACK came after the retransmissions: each reads in the order it happened."""
    (b,) = analyze_file(RECORDED / "b.pcap").connections
    (note,) = [n for n in b.notes if n.startswith("client retransmitted")]
    assert note.endswith("or the network duplicated it), then the segment was acknowledged again")
    (a,) = analyze_file(RECORDED / "a.pcap").connections
    (note,) = [n for n in a.notes if n.startswith("client retransmitted")]
    assert note.endswith("with gaps 0.424, 0.42 s, then the segment was acknowledged")
