"""Tests for the built-in agent (images/agent/), run as real subprocesses talking TCP over
127.0.0.1 only (agentproc.py). The `spawn` fixture also fails a test whose agents printed an
event that wire.py does not list for their role."""

from __future__ import annotations

import errno
import itertools
import json
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from orchestrator.agent import wire
from tests.unit.agent.agentproc import (
    AGENT_PATH,
    LOOPBACK,
    WAIT_S,
    Event,
    Spawn,
    client_config,
    connect_client,
    start_server,
)


def assert_subsequence(names: list[str], expected: list[str]) -> None:
    position = 0
    for name in names:
        if position < len(expected) and name == expected[position]:
            position += 1
    assert position == len(expected), f"expected {expected} in this order within {names}"


# ---------------------------------------------------------------------------------------------
# Data flow


def test_echo_round_trip_then_client_close(spawn: Spawn) -> None:
    server, port = start_server(spawn, "echo")
    client, local = connect_client(
        spawn, server, "send", port, size=100, every_ms=50, count=3, close_after_s=0.6
    )

    assert client.wait_exit() == 0
    received = client.find("received")
    assert received and received[-1]["total"] == 300
    assert sum(e["bytes"] for e in received) == 300
    # count=3 means exactly three messages, nothing more in the remaining 0.45 s.
    assert client.find("sent")[-1]["total"] == 300
    assert_subsequence(client.names(), ["connected", "sent", "received", "closing", "eof", "closed", "exit"])

    server.wait_for("closed", peer=local)
    assert server.find("received", peer=local)[-1]["total"] == 300
    assert server.find("sent", peer=local)[-1]["total"] == 300
    assert_subsequence(server.names(peer=local), ["accepted", "received", "sent", "eof", "closed"])


def test_send_schedule_honours_delay_and_period(spawn: Spawn) -> None:
    server, port = start_server(spawn, "sink")
    client, _ = connect_client(spawn, server, "send", port, send_after_s=0.3, every_ms=100, count=3)

    client.wait_until(lambda events: sum(e["event"] == "sent" for e in events) >= 3, "sent three times")
    connected = client.find("connected")[0]["mono"]
    sent = [e["mono"] for e in client.find("sent")]
    assert sent[0] - connected >= 0.3
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert all(0.09 <= gap < 0.5 for gap in gaps), gaps


def test_events_carry_clocks_host_and_config(spawn: Spawn) -> None:
    server, _ = start_server(spawn, "sink")
    start = server.wait_for("start")
    before = time.time()
    assert abs(start["t"] - before) < 5
    assert start["host"] == "server"
    assert start["config"]["mode"] == "sink"
    assert start["config"]["socket"]["keepalive"] is False
    assert start["mono"] <= server.wait_for("listening")["mono"]


# ---------------------------------------------------------------------------------------------
# Closing


def test_client_close_gives_eof_on_both_sides(spawn: Spawn) -> None:
    server, port = start_server(spawn, "sink")
    client, local = connect_client(spawn, server, "close", port, close_after_s=0.2)

    assert client.wait_exit() == 0
    assert client.names()[-5:] == ["connected", "closing", "eof", "closed", "exit"]
    closing = client.find("closing")[0]
    assert closing["how"] == "shutdown"
    assert closing["mono"] - client.find("connected")[0]["mono"] >= 0.2

    server_eof = server.wait_for("eof", peer=local)
    server.wait_for("closed", peer=local)
    assert server_eof["t"] >= closing["t"] - 0.01
    assert not server.find("error")


def test_server_close_first_gives_client_eof(spawn: Spawn) -> None:
    server, port = start_server(spawn, "close-first", close_after_s=0.2)
    client, local = connect_client(spawn, server, "idle", port)

    assert client.wait_exit() == 0
    assert client.names()[-4:] == ["connected", "eof", "closed", "exit"]
    server.wait_for("closed", peer=local)
    assert_subsequence(server.names(peer=local), ["accepted", "closing", "eof", "closed"])
    assert server.find("closing", peer=local)[0]["how"] == "shutdown"


def test_server_keeps_listening_for_later_connections(spawn: Spawn) -> None:
    server, port = start_server(spawn, "sink")
    first, first_local = connect_client(spawn, server, "close", port, close_after_s=0.1)
    assert first.wait_exit() == 0
    server.wait_for("closed", peer=first_local)

    second, second_local = connect_client(spawn, server, "close", port, close_after_s=0.1)
    assert second.wait_exit() == 0
    server.wait_for("closed", peer=second_local)
    assert first_local != second_local
    assert server.proc.poll() is None


# ---------------------------------------------------------------------------------------------
# Faults


def test_server_sigkill_with_idle_client_gives_eof(spawn: Spawn) -> None:
    server, port = start_server(spawn, "echo")
    client, _ = connect_client(spawn, server, "idle", port)

    server.proc.send_signal(signal.SIGKILL)
    assert client.wait_exit() == 0
    assert client.names()[-3:] == ["eof", "closed", "exit"]
    assert not client.find("error")


def test_server_sigkill_with_unread_data_gives_connreset(spawn: Spawn) -> None:
    server, port = start_server(spawn, "hold")
    client, _ = connect_client(spawn, server, "send", port, size=1000, every_ms=20)
    client.wait_until(
        lambda events: any(e["event"] == "sent" and e["total"] >= 3000 for e in events), "sent 3000 bytes"
    )

    server.proc.send_signal(signal.SIGKILL)
    assert client.wait_exit() == 0
    error = client.wait_for("error")
    assert error["errno"] == "ECONNRESET"
    assert error["code"] == errno.ECONNRESET
    assert error["op"] in ("recv", "send")
    assert error["message"]
    assert client.names()[-3:] == ["error", "closed", "exit"]
    assert not client.find("eof")


def test_hold_reports_peer_fin_without_reading(spawn: Spawn) -> None:
    server, port = start_server(spawn, "hold")
    client, local = connect_client(
        spawn, server, "send", port, size=100, count=2, every_ms=20, close_after_s=0.3
    )

    fin = server.wait_for("peer_fin", peer=local)
    assert fin["unread"] == 200
    client.wait_for("closing")
    time.sleep(0.2)
    # hold never reads, so neither side may have seen EOF or closed.
    assert not server.find("received") and not server.find("closed")
    assert not client.find("eof")


def test_connect_to_closed_port_is_refused(spawn: Spawn) -> None:
    # Bound but not listening: the port cannot be taken by anyone else, and SYNs get an RST.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as placeholder:
        placeholder.bind((LOOPBACK, 0))
        port = placeholder.getsockname()[1]
        client = spawn(client_config("idle", port))
        assert client.wait_exit() == 0
    error = client.wait_for("error")
    assert error["op"] == "connect"
    assert error["errno"] == "ECONNREFUSED"
    assert error["code"] == errno.ECONNREFUSED
    assert client.names()[-3:] == ["connecting", "error", "exit"]
    assert not client.find("connected")


def test_full_send_buffer_blocks_then_unblocks(spawn: Spawn) -> None:
    """A peer that stops reading (zero window) must give `blocked`, not a stuck or dead agent."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by the accepted socket
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        listener.settimeout(WAIT_S)
        port = listener.getsockname()[1]
        client = spawn(client_config("send", port, size=65536, every_ms=5, count=100))
        peer, _ = listener.accept()
        with peer:
            blocked = client.wait_for("blocked")
            assert blocked["unsent"] > 0
            sent_while_blocked = client.find("sent")[-1]["total"]
            time.sleep(0.3)
            # Still alive and still stalled: no more `sent`, no spurious second `blocked`.
            assert client.proc.poll() is None
            assert client.find("sent")[-1]["total"] == sent_while_blocked
            assert len(client.find("blocked")) == 1

            peer.settimeout(WAIT_S)
            expected = 100 * 65536
            received = 0
            while received < expected:
                chunk = peer.recv(1 << 20)
                assert chunk, "agent closed early"
                received += len(chunk)
            client.wait_for("unblocked")
            # The last message's `sent` may be printed just after `unblocked`: wait for it, bounded.
            client.wait_for("sent", total=expected)


def test_sigterm_exits_quietly(spawn: Spawn) -> None:
    server, _ = start_server(spawn, "echo")
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert server.wait_for("exit")["signal"] == "SIGTERM"
    assert server.stderr_text() == ""


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGABRT])
def test_a_signal_whose_default_ends_a_process_ends_the_agent_and_says_so(spawn: Spawn, sig: int) -> None:
    """In its container the agent is PID 1, to which the kernel delivers no signal it has no
    handler for: measured, `kill` with SIGHUP left the agent and its connection as they were. So
    it handles each such signal itself, dying as the default would: exit 128 + N, a kernel FIN."""
    server, port = start_server(spawn, "echo")
    client, _ = connect_client(spawn, server, "idle", port)
    server.proc.send_signal(sig)
    assert server.wait_exit() == 128 + sig
    assert server.wait_for("exit") | {"t": 0, "mono": 0} == {
        "t": 0,
        "mono": 0,
        "host": server.config["host"],
        "event": "exit",
        "code": 128 + sig,
        "signal": signal.Signals(sig).name,
    }
    assert client.wait_exit() == 0
    assert client.names()[-3:] == ["eof", "closed", "exit"]  # the kernel closed the socket: FIN


# ---------------------------------------------------------------------------------------------
# Socket options


def test_socket_options_are_read_back(spawn: Spawn) -> None:
    options = {
        "keepalive": True,
        "keepidle_s": 5,
        "keepintvl_s": 2,
        "keepcnt": 3,
        "user_timeout_ms": 4000,
        "linger_s": 1,
        "nodelay": True,
    }
    server, port = start_server(spawn, "sink", socket=options)
    client, local = connect_client(spawn, server, "idle", port, socket=options)

    def read_back(event: Event) -> dict[str, Any]:
        return {key: event[key] for key in options}

    assert read_back(client.wait_for("socket_options")) == options
    assert read_back(server.wait_for("socket_options", socket="listener")) == options
    assert read_back(server.wait_for("socket_options", socket="connection", peer=local)) == options


def _has_rto_max() -> bool:
    with socket.socket() as sock:
        try:
            sock.getsockopt(socket.IPPROTO_TCP, 44)  # TCP_RTO_MAX_MS
        except OSError:
            return False
    return True


@pytest.mark.skipif(not _has_rto_max(), reason="TCP_RTO_MAX_MS needs a kernel from 6.15")
def test_the_rto_ceiling_is_set_and_read_back(spawn: Spawn) -> None:
    server, port = start_server(spawn, "sink", socket={"rto_max_ms": 2000})
    client, _ = connect_client(spawn, server, "idle", port, socket={"rto_max_ms": 1500})
    assert client.wait_for("socket_options")["rto_max_ms"] == 1500
    assert server.wait_for("socket_options", socket="listener")["rto_max_ms"] == 2000


def test_default_socket_options_read_back_as_off(spawn: Spawn) -> None:
    server, port = start_server(spawn, "sink")
    client, _ = connect_client(spawn, server, "idle", port)
    values = client.wait_for("socket_options")
    assert values["keepalive"] is False
    assert values["nodelay"] is False
    assert values["linger_s"] is None
    assert values["user_timeout_ms"] == 0
    assert values["rto_max_ms"] in (120_000, None)  # None: a kernel before 6.15 has no such option
    # Unset keepalive timers read back as the namespace's sysctls, which are positive.
    assert values["keepidle_s"] > 0 and values["keepintvl_s"] > 0 and values["keepcnt"] > 0


# ---------------------------------------------------------------------------------------------
# Config validation (the checks themselves are wire's: test_wire.py)


SERVER_OK = {"host": "h", "role": "server", "mode": "echo", "port": 1}
CLIENT_OK = {"host": "h", "role": "client", "mode": "idle", "connect": "10.0.0.1:1"}


def with_changes(base: dict[str, Any], **changes: Any) -> list[str]:
    """The base config as the agent's single argument, with keys replaced (None removes a key)."""
    config = {**base, **changes}
    return [json.dumps({key: value for key, value in config.items() if value is not None})]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "exactly one argument"),
        (["{}", "{}"], "exactly one argument"),
        (["{not json"], "not valid JSON"),
        (["[1, 2]"], "JSON object"),
        (with_changes(SERVER_OK, host=None), "'host'"),
        (with_changes(SERVER_OK, role="peer"), "role"),
        (with_changes(SERVER_OK, mode="send"), "mode 'send'"),
        (with_changes(SERVER_OK, port=None), "'port'"),
        (with_changes(SERVER_OK, port=70000), "port"),
        (with_changes(SERVER_OK, bind="any"), "bind"),
        (with_changes(SERVER_OK, close_after_s=1), "close-first"),
        (with_changes(SERVER_OK, socket={"keepcnt": 500}), "socket.keepcnt"),
        (with_changes(SERVER_OK, socket={"keepalive": 1}), "socket.keepalive"),
        (with_changes(SERVER_OK, socket={"linger": 1}), "linger"),
        (with_changes(CLIENT_OK, connect=None), "'connect'"),
        (with_changes(CLIENT_OK, connect="localhost:1"), "connect"),
        (with_changes(CLIENT_OK, connect="::1:80"), "[v6addr]"),
        (with_changes(CLIENT_OK, connect="10.0.0.1:0"), "connect port"),
        (with_changes(CLIENT_OK, colour=1), "colour"),
        (with_changes(CLIENT_OK, mode="send", every_ms=0), "every_ms"),
        (with_changes(CLIENT_OK, mode="send", size=True), "size"),
        (with_changes(CLIENT_OK, mode="send", count=0), "count"),
        (with_changes(CLIENT_OK, close_after_s=float("nan")), "finite"),
    ],
)
def test_bad_config_exits_2_with_one_line(argv: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, str(AGENT_PATH), *argv], capture_output=True, text=True, timeout=WAIT_S, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "bad config" in lines[0]
    assert expected in lines[0]


def test_bad_config_bases_are_valid() -> None:
    # Each bad-config case changes one thing from these, so they must parse cleanly themselves
    # (the agent parses its argument with wire.Config.from_json and nothing else).
    assert wire.Config.from_json(with_changes(SERVER_OK)[0]).port == 1
    assert wire.Config.from_json(with_changes(CLIENT_OK)[0]).connect == "10.0.0.1:1"


def test_a_pooled_connection_meets_the_dead_peer_on_its_writes(spawn: Spawn) -> None:
    """pool: one request and its echo, then unwatched; the server dies meanwhile (its kernel's
    FIN goes unread), and the reuse writes: the first is taken (and draws the peer's RST), the
    next fails with EPIPE. No EOF is ever seen: nobody reads a pooled connection."""
    server, port = start_server(spawn, "echo")
    client, _ = connect_client(spawn, server, "pool", port, size=10, every_ms=100, send_after_s=0.6, count=3)
    client.wait_until(lambda events: any(e["event"] == "received" for e in events), "the first reply")
    server.proc.send_signal(signal.SIGKILL)
    assert client.wait_exit() == 0
    sent = client.find("sent")
    assert [e["total"] for e in sent] == [10, 20], "the request, then the one reuse write the kernel took"
    error = client.find("error")[0]
    assert (error["op"], error["errno"]) == ("send", "EPIPE")
    assert error["mono"] - client.find("connected")[0]["mono"] >= 0.6
    assert not client.find("eof")
    assert client.names()[-3:] == ["error", "closed", "exit"]
