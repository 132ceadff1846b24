"""A host's program in the scenario: every mistake found before Docker, with its key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import ScenarioError
from orchestrator.scenario.loader import load_scenario

BASE = """\
name: p
duration: 10s
hosts:
  server:
    role: server
    address: 10.77.0.10
{server}
  client:
    role: client
    address: 10.77.0.20
{client}
{rest}
"""
SERVER = "    program: {command: python3 -m http.server 8000, ready: {port: 8000}}"
CLIENT = "    program: {command: [nc, server, '8000']}"


def load(tmp_path: Path, server: str = SERVER, client: str = CLIENT, rest: str = "") -> object:
    path = tmp_path / "s.yaml"
    path.write_text(BASE.format(server=server, client=client, rest=textwrap.dedent(rest)))
    return load_scenario(path)


def problems(tmp_path: Path, **parts: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load(tmp_path, **parts)
    return [f"{p.key}: {p.message}" for p in caught.value.problems]


def test_a_program_host_loads_with_its_command_split_into_words(tmp_path: Path) -> None:
    scenario = load(tmp_path, rest="expect: {apps: {client: {sees: eof, exits: 0, within: 2s}}}")
    server = scenario.hosts["server"].program  # type: ignore[attr-defined]
    assert server.command == ["python3", "-m", "http.server", "8000"]
    assert server.run_as == "65534:65534"  # nobody unless the user says otherwise
    assert scenario.hosts["client"].agent is None  # type: ignore[attr-defined]


def test_a_server_program_needs_a_readiness_and_never_a_sleep(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, server="    program: {command: [sleep, '1']}")
    assert found.startswith("hosts.server: a server program needs `ready:`")
    (found,) = problems(tmp_path, server="    program: {command: [x], ready: {port: 1, log: up}}")
    assert "exactly one of port" in found


def test_agent_or_program_not_both_and_a_client_needs_one(tmp_path: Path) -> None:
    both = SERVER + "\n    agent: {mode: echo}"
    found = problems(tmp_path, server=both, client="    sysctls: {}")
    assert any("not both" in f for f in found)
    assert any(f.startswith("hosts.client: a client needs an `agent:`") for f in found)


def test_image_sources_and_names(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, client="    program: {image: redis:7, packages: [redis-server]}")
    assert "give one or the other" in found
    found = problems(tmp_path, client="    program: {user: 'root;x', environment: {'A B': x}}")
    assert len(found) == 2 and "A B" in found[0] and "expected a user name" in found[1]
    (found,) = problems(tmp_path, client="    program: {packages: ['Bad_Name'], command: [nc]}")
    assert "not a Debian package name" in found


def test_program_expectations_belong_to_programs(tmp_path: Path) -> None:
    agent_client = "    agent: {mode: idle, connect: 'server:7000'}"
    rest = "expect: {apps: {client: {exits: 0}}}"
    (found,) = problems(tmp_path, client=agent_client, rest=rest)
    assert found == "expect.apps.client.exits: exits is for a program; client runs the built-in agent"
    (found,) = problems(tmp_path, rest="expect: {apps: {client: {output: '(unclosed'}}}")
    assert "not a regular expression" in found
    (found,) = problems(tmp_path, rest="expect: {apps: {client: {within: 2s}}}")
    assert "expect at least one of" in found


def test_a_service_needs_the_compose_file(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, client="    service: app")
    assert found == "hosts.client.service: a service needs the scenario's `compose:` file"


def test_an_unknown_program_key_is_named_with_a_hint(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, client="    program: {comand: [nc]}")
    assert found.startswith("hosts.client.program.comand: unknown key (did you mean 'command'?)")


def test_an_untraced_program_reports_no_events_to_wait_for(tmp_path: Path) -> None:
    client = "    program: {command: [nc, server, '8000'], observe: none}"
    rest = "timeline: [{after: client.connected, at: 1s, fault: kill, host: server}]"
    (found,) = problems(tmp_path, client=client, rest=rest)
    assert found.startswith("timeline[0].after: client's program is not traced (observe: none)")


def test_a_program_image_goes_under_program(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, client="    image: redis:7\n" + CLIENT)
    assert found == "hosts.client: a program's image goes under program.image (or comes from its service)"
