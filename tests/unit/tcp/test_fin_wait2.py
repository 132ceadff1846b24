"""A FIN the peer acknowledged but never answered with its own: the closer waits in FIN_WAIT2.

Recorded in netns (Linux 6.18, `tcp_fin_timeout=2` in the client's namespace; the client
writes 5 bytes, then 0.2 s later `close()`s (`closed.pcap`) or `shutdown(SHUT_WR)`s
(`shut_down.pcap`); the server never closes). ss, sampled every 0.25 s: the close()d socket
left about 2 s after its FIN was acknowledged, the shut-down one stayed. The packets are the
same, so the note gives both, and the timer."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.pcap.reader import FIN, read_tcp
from orchestrator.tcp.analysis import analyze, analyze_file

RECORDED = Path(__file__).parent / "recorded" / "fin_wait2"


@pytest.mark.parametrize("name", ["closed.pcap", "shut_down.pcap"])
def test_an_acknowledged_unanswered_fin_names_fin_wait2_and_its_timer(name: str) -> None:
    (conn,) = analyze_file(RECORDED / name).connections
    assert (conn.close, conn.initiator) == ("fin-unanswered", "client")
    (note,) = [n for n in conn.notes if n.startswith("only client sent FIN")]
    assert "FIN_WAIT2" in note and "CLOSE_WAIT" in note and "tcp_fin_timeout" in note


def test_a_fin_never_acknowledged_does_not_claim_fin_wait2() -> None:
    # The same capture without the server's last ACK (of the FIN): FIN_WAIT1, not FIN_WAIT2.
    packets = list(read_tcp(RECORDED / "closed.pcap"))
    fin = next(p for p in packets if p.flags & FIN)
    cut = [p for p in packets if not (p.time_ns > fin.time_ns and p.dport != 7000)]
    (conn,) = analyze(cut)
    (note,) = [n for n in conn.notes if n.startswith("only client sent FIN")]
    assert "FIN_WAIT2" not in note
