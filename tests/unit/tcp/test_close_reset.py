"""Resets at close, recorded in netns (kernel 6.18; `*_a` the client's capture, `*_b` the server's),
with what the kernel said (ss -tano every 0.25 s, nstat, the apps' errno):

* `data_after_close*`: the client close()s, the server sends data 0.7 s later and the client's
  kernel answers with an RST without ACK (seq = the server's ACK), the shape of a host with no
  socket, yet the socket was there: FIN-WAIT-2 in ss, `timer:(timewait,59sec)` with the default
  tcp_fin_timeout, `timer:(keepalive,59sec)` and TcpExtTCPAbortOnData=1 with tcp_fin_timeout=120.
  The server's app (in CLOSE_WAIT) got EPIPE. `data_after_orphan_gone_a`: tcp_fin_timeout=2,
  the data 3.2 s after the FIN: the orphan had left ss at 2.3 s, silently; the same packets.
* `unread_a`: the client close()s with 100 bytes it never read: RST with ACK at its next seq,
  no FIN (TcpExtTCPAbortOnClose=1); the server's recv got ECONNRESET. `linger0_a`: the client
  had received nothing and close()s with SO_LINGER 0: the same RST (TcpExtTCPAbortOnData=1).
* `*_rst_lost_*`: the server close()s (with 100 bytes unread, or SO_LINGER 0 with nothing
  received) inside a cut: its RST is lost, the client sends after the cut heals, and the server's
  kernel, with no socket now, answers with an RST without ACK; the client's app was told nothing
  until then. The client's capture shows only that second RST.
* `restart_read_eof_a`: redis-cli's capture against a redis-server restarted on the same kernel:
  the server's FIN, redis-cli's next PING, the orphan's RST; its recvfrom after the RST got 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import ConnectionSummary

RECORDED = Path(__file__).parent / "recorded" / "close_reset"
AFTER_CLOSE = [
    "data_after_close_b.pcap",
    "data_after_close_fin_timeout_120_a.pcap",
    "data_after_orphan_gone_a.pcap",
]


def _conn(name: str) -> ConnectionSummary:
    (conn,) = analyze_file(RECORDED / name).connections
    return conn


def _note(conn: ConnectionSummary, start: str) -> str:
    (note,) = [n for n in conn.notes if n.startswith(start)]
    return note


@pytest.mark.parametrize("name", AFTER_CLOSE)
def test_data_after_close_is_reset_by_a_socket_that_may_still_exist(name: str) -> None:
    conn = _conn(name)
    assert (conn.close, conn.initiator, conn.rst_from) == ("rst", "client", "client")
    note = _note(conn, "the RST has no ACK flag")
    assert "no longer had this connection" not in note
    assert "after data server sent once client had sent its FIN" in note
    assert "while the socket still exists" in note and "no socket left" in note
    assert note.endswith(
        "server's app, which had client's FIN, gets EPIPE from its next write (a read still returns "
        "end of file, the FIN having come first)"
    )


def test_after_an_rst_in_close_wait_a_read_still_returns_end_of_file() -> None:
    # redis-cli -r -1 -i 1 PING against a redis-server restarted on the same kernel (a run,
    # engine 20.10): the server's FIN, the next PING 0.49 s later, the orphan's RST 0.1 ms
    # after it; redis-cli's recvfrom, 84 us after the RST, returned 0 (EOF), and it exited 1.
    conn = _conn("restart_read_eof_a.pcap")
    assert (conn.close, conn.initiator, conn.rst_from) == ("rst", "server", "server")
    note = _note(conn, "the RST has no ACK flag")
    assert "after data client sent once server had sent its FIN" in note
    assert note.endswith(
        "gets EPIPE from its next write (a read still returns end of file, the FIN having come first)"
    )


@pytest.mark.parametrize(("name", "received"), [("unread_a.pcap", "100 bytes"), ("linger0_a.pcap", None)])
def test_an_rst_with_ack_is_the_sockets_own_abort(name: str, received: str | None) -> None:
    conn = _conn(name)
    assert (conn.close, conn.initiator, conn.rst_from) == ("rst", None, "client")
    note = _note(conn, "the RST carries an ACK")
    assert "close() with received data the app never read" in note and "SO_LINGER 0" in note
    if received is None:
        assert "client had received no data from server, so no unread data" in note
    else:  # the whole connection's, and when the last came: not whether the app read them
        assert (
            f"client had received {received} from server over the connection (the RST acknowledges "
            "them), the last 0.3 s before the RST; whether its app had read them, the packets cannot tell"
        ) in note
    assert note.endswith("server's app gets ECONNRESET")


@pytest.mark.parametrize("name", ["unread_rst_lost_b.pcap", "linger0_rst_lost_b.pcap"])
def test_an_rst_the_peer_never_got(name: str) -> None:
    conn = _conn(name)
    assert (conn.close, conn.rst_from) == ("rst", "server")
    first, second = conn.rsts.server
    note = _note(conn, "client went on sending after server's RST")
    assert f"(frame {first.frame})" in note and "it never got that RST (lost on the way)" in note
    assert note.endswith(f"server's RST of frame {second.frame} answered it later")
    assert "ECONNRESET" not in _note(conn, "the RST carries an ACK")  # that RST reached no app


def test_an_rst_that_arrived_says_nothing_of_going_on() -> None:
    for name in ["unread_a.pcap", *AFTER_CLOSE]:
        assert not any("went on sending" in n for n in _conn(name).notes)
    conn = _conn("unread_rst_lost_a.pcap")  # the client's side: only the socket-less RST came
    note = _note(conn, "the RST has no ACK flag")
    assert "server no longer had this connection (socket closed, or the host rebooted)" in note
    assert "or, as server sent no FIN or RST before it here, not server's socket but a firewall" in note
    assert "or a NAT or stateful firewall on the path" in note  # its lost RST: unseen


def test_a_killed_process_with_unread_data_is_named_among_the_causes() -> None:
    # A run of the shipped scenario kill9_unread_rst: kill -9 of a server holding 192 unread bytes.
    conn = analyze_file(RECORDED.parent / "kill9_unread" / "server.pcap").connections[0]
    (note,) = [n for n in conn.notes if n.startswith("the RST carries an ACK")]
    assert "kill -9" in note and "received 192 bytes" in note
