"""The agent's wire format (orchestrator/agent/wire.py): its config parser, and its event lists
checked against what the real agent prints."""

from __future__ import annotations

import json
import re
import signal
import socket
from dataclasses import fields
from typing import Any

import pytest

from orchestrator.agent import wire
from tests.unit.agent.agentproc import (
    Spawn,
    client_config,
    connect_client,
    start_server,
    wire_problems,
)

# ---------------------------------------------------------------------------------------------
# Events, against the real agent


def test_every_event_the_agent_prints_is_listed_for_its_role(spawn: Spawn) -> None:
    """Servers and clients in several modes and endings; every event each printed must be in
    wire.EVENTS_BY_ROLE for its role, with the fields wire.EVENT_FIELDS lists (the spawn fixture
    checks the same in every agent test)."""
    echo, echo_port = start_server(spawn, "echo", socket={"keepalive": True, "linger_s": 0})
    sender, _ = connect_client(spawn, echo, "send", echo_port, size=100, every_ms=20, count=3)
    closer, _ = connect_client(spawn, echo, "close", echo_port, close_after_s=0.2)
    hold, hold_port = start_server(spawn, "hold")
    unread, unread_local = connect_client(spawn, hold, "send", hold_port, size=500, every_ms=20)
    first, first_port = start_server(spawn, "close-first", close_after_s=0.1)
    idle, _ = connect_client(spawn, first, "idle", first_port)
    with socket.socket() as placeholder:  # bound, not listening: the connect is refused
        placeholder.bind(("127.0.0.1", 0))
        refused = spawn(client_config("idle", placeholder.getsockname()[1]))
        assert refused.wait_exit() == 0

    assert closer.wait_exit() == 0 and idle.wait_exit() == 0
    unread.wait_until(lambda events: any(e["event"] == "sent" for e in events), "sent")
    unread.proc.send_signal(signal.SIGINT)  # its peer_fin reaches hold, which never reads
    hold.wait_for("peer_fin", peer=unread_local)
    sender.wait_for("received", total=300)
    for process in (echo, hold, first, sender):
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait_exit() == 0

    printed: dict[str, set[str]] = {"server": set(), "client": set()}
    for process in (echo, sender, closer, hold, unread, first, idle, refused):
        role = process.config["role"]
        assert not [p for e in process.events for p in wire_problems(e, role)]
        printed[role] |= {e["event"] for e in process.events}
    # The runs were not vacuous: each role printed what only it can, and an error and exit.
    assert {"listening", "accepted", "peer_fin", "closing", "exit"} <= printed["server"]
    assert {"connecting", "connected", "error", "eof", "closing", "exit"} <= printed["client"]


def test_problems_are_found_in_a_wrong_event() -> None:
    line = {"t": 1.0, "mono": 1.0, "host": "c", "event": "connected", "local": "a:1", "peer": "b:2"}
    assert wire_problems(line, "client") == []
    assert wire_problems(line, "server") != []  # a server never connects
    assert wire_problems({**line, "colour": 1}, "client") != []
    assert wire_problems({k: v for k, v in line.items() if k != "mono"}, "client") != []


def test_ready_text_is_in_the_listening_line_only(spawn: Spawn) -> None:
    server, _ = start_server(spawn, "sink")
    ready = [line for line in server.lines if wire.READY_TEXT in line]
    assert [json.loads(line)["event"] for line in ready] == ["listening"]


def test_role_lists_differ_where_the_roles_do() -> None:
    server, client = set(wire.EVENTS_BY_ROLE["server"]), set(wire.EVENTS_BY_ROLE["client"])
    assert set(wire.Event) == server | client
    assert server - client == {"listening", "accepted", "peer_fin"}
    assert client - server == {"connecting", "connected"}
    assert set(wire.EVENT_FIELDS) == set(wire.Event)


# ---------------------------------------------------------------------------------------------
# The config


FULL = wire.Config(
    host="c",
    role="client",
    mode="send",
    port=5,
    bind="::1",
    connect="[fd00::10]:7000",
    every_ms=12.5,
    size=100,
    send_after_s=0.5,
    count=3,
    close_after_s=2.0,
    socket=wire.SocketOptions(True, 1, 2, 3, 4000, 0, True, rto_max_ms=2000),
)


def test_config_round_trips_through_json() -> None:
    assert wire.Config.from_json(FULL.to_json()) == FULL
    assert json.loads(FULL.to_json())["socket"]["keepcnt"] == 3


def test_null_or_missing_keys_take_the_defaults() -> None:
    client_json = '{"host": "c", "role": "client", "mode": "send", "connect": "10.0.0.1:7"}'
    client = wire.Config.from_json(client_json)
    assert (client.every_ms, client.size, client.send_after_s, client.count) == (200.0, 64, 0.0, None)
    assert client.close_after_s is None
    assert client.socket == wire.SocketOptions()
    assert wire.Config.from_json(json.dumps({**json.loads(client.to_json()), "size": None})) == client

    closer = wire.Config.from_json(client_json.replace('"send"', '"close"'))
    assert closer.close_after_s == 1.0

    server = wire.Config.from_json('{"host": "s", "role": "server", "mode": "close-first", "port": 7000}')
    assert (server.close_after_s, server.bind) == (0.5, "0.0.0.0")


def _every_key() -> list[tuple[str, dict[str, Any]]]:
    """(dotted key, FULL's JSON with that key set to a list, a wrong type for every field)."""
    out = []
    for f in fields(wire.Config):
        out.append((f.name, {**json.loads(FULL.to_json()), f.name: [1]}))
    for f in fields(wire.SocketOptions):
        raw = json.loads(FULL.to_json())
        raw["socket"][f.name] = [1]
        out.append((f"socket.{f.name}", raw))
    return out


@pytest.mark.parametrize(("key", "raw"), _every_key(), ids=[k for k, _ in _every_key()])
def test_every_field_refuses_a_wrong_type_by_name(key: str, raw: dict[str, Any]) -> None:
    with pytest.raises(wire.ConfigError, match=rf"^{key} must be"):
        wire.Config.from_json(json.dumps(raw))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"size": 0}, "size must be between 1 and"),
        ({"size": 1.5}, "size must be an integer"),
        ({"every_ms": 0}, "every_ms must be greater than 0"),
        ({"send_after_s": -1}, "send_after_s must be at least 0"),
        ({"close_after_s": float("inf")}, "close_after_s must be finite"),
        ({"host": ""}, "host must be a non-empty string"),
        ({"bind": "any"}, "bind must be an IP address"),
        ({"connect": "10.0.0.1"}, "connect must look like"),
        ({"socket": {"keepidle_s": 0}}, "socket.keepidle_s must be between 1 and 32767"),
        ({"socket": {"nodelay": "yes"}}, "socket.nodelay must be true or false"),
        ({"socket": 1}, "socket must be an object"),
        ({"role": "server", "mode": "send"}, "not valid for role server"),
        ({"role": "server", "mode": "echo", "port": None}, "'port' (role server)"),
        ({"connect": None}, "'connect' (role client)"),
        ({"role": "server", "mode": "sink"}, "close-first only"),
    ],
)
def test_bad_values_are_named(changes: dict[str, Any], expected: str) -> None:
    raw = {**json.loads(FULL.to_json()), **changes}
    with pytest.raises(wire.ConfigError, match=re.escape(expected)):
        wire.Config.from_json(json.dumps(raw))


def test_ipv6_endpoints_parse_and_format() -> None:
    ip, port = wire.parse_endpoint("[fd00::10]:7000")
    assert (str(ip), port) == ("fd00::10", 7000)
    assert wire.format_address(("fd00::10", 7000, 0, 0)) == "[fd00::10]:7000"
    assert wire.format_address(("::ffff:10.77.0.10", 7000, 0, 0)) == "10.77.0.10:7000"
    assert wire.format_address(("10.77.0.10", 7000)) == "10.77.0.10:7000"
