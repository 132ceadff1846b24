"""`expect.sockets`: loaded with every problem at once, and checked on recorded runs' samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ScenarioError
from orchestrator.scenario.loader import load_scenario
from orchestrator.scenario.socket_expect import SocketExpect
from orchestrator.verdict.expectations import Check
from orchestrator.verdict.socket_checks import check_sockets
from orchestrator.verdict.socket_reconcile import reconcile
from orchestrator.verdict.socket_timeline import load_timelines
from tests.helpers.recorded_runs import Replayed, replay

SCENARIO = """\
name: t
duration: 10s
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: echo}}
  client: {role: client, address: 10.77.0.20, agent: {mode: idle, connect: "server:7000"}}
expect:
  sockets:
{items}
"""


def load(tmp_path: Path, items: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("{items}\n", items))
    try:
        load_scenario(path)
    except ScenarioError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_a_good_list_loads(tmp_path: Path) -> None:
    items = """\
    - {host: client, state: ESTAB, during: until-end}
    - {host: client, reaches: CLOSE-WAIT, of: any, peer: server, port: 7000}
    - {host: server, never: TIME-WAIT}
    - {host: client, timer: keepalive}
    - {host: client, timer: on}
    - {host: client, retrans: ">=3"}
"""
    assert load(tmp_path, items) == []


def test_every_problem_at_once_with_its_line_and_key(tmp_path: Path) -> None:
    items = """\
    - {host: client, state: ESTAB, reaches: CLOSE-WAIT}
    - {host: client, during: end, never: ESTAB}
    - {host: client, reaches: ESTABLISHED}
    - {host: client, peer: client, timer: sometimes}
    - {host: client, reach: TIME-WAIT}
"""
    found = load(tmp_path, items)
    text = "\n".join(found)
    assert "s.yaml:8: expect.sockets[0]: give exactly one of state, reaches, never, timer, retrans " in text
    assert "(got state, reaches)" in text
    assert "s.yaml:9: expect.sockets[1]: during says how long a state lasts: give state too" in text
    assert "s.yaml:10: expect.sockets[2].reaches:" in text and "'ESTAB'" in text
    assert "s.yaml:11: expect.sockets[3].timer:" in text
    assert "s.yaml:12: expect.sockets[4].reach: unknown key (did you mean 'reaches'?)" in text
    assert len(found) == 5


def test_hosts_it_names_are_the_scenarios(tmp_path: Path) -> None:
    items = """\
    - {host: clinet, state: ESTAB}
    - {host: client, peer: client, reaches: ESTAB}
    - {host: client, peer: sever, reaches: ESTAB}
"""
    found = [p.split("s.yaml:", 1)[1] for p in load(tmp_path, items)]
    assert found == [
        "8: expect.sockets[0].host: unknown host 'clinet'; hosts are client, server",
        "9: expect.sockets[1].peer: a host's peer is another host",
        "10: expect.sockets[2].peer: unknown host 'sever'; hosts are client, server",
    ]


def checked(run: Replayed, *items: dict[str, Any]) -> list[Check]:
    expect = run.scenario.expect.model_copy(update={"sockets": [SocketExpect(**i) for i in items]})
    scenario = run.scenario.model_copy(update={"expect": expect})
    timelines = load_timelines(run.run_dir, scenario.hosts)
    hosts = {"client": "client", "server": "server"}
    connections = [reconcile(c, hosts, timelines, run.t0) for c in run.connections]  # type: ignore[arg-type]
    return check_sockets(scenario, connections, run.t0)


@pytest.fixture
def power_cut(tmp_path: Path) -> Replayed:
    return replay("power_cut", tmp_path)


def test_power_cut_the_kernels_story(power_cut: Replayed) -> None:
    checks = checked(
        power_cut,
        {"host": "client", "reaches": "none"},
        {"host": "server", "state": "ESTAB", "during": "until-end"},
        {"host": "server", "state": "ESTAB", "during": "throughout"},
        {"host": "client", "timer": "on"},
        {"host": "client", "retrans": ">=4"},
        {"host": "client", "never": "CLOSE-WAIT"},
        {"host": "client", "state": "none", "during": "end"},
    )
    assert [c.passed for c in checks] == [True] * 7, [(c.name, c.observed) for c in checks]
    gone, server, _, timer, retrans, _, _ = checks
    assert gone.observed.startswith("ESTAB +") and " → none +" in gone.observed
    assert gone.evidence[0].startswith("client.sockets.jsonl:")
    assert server.observed.endswith("(to the end)") and len(server.evidence) == 2
    assert timer.observed.startswith("ESTAB timer:(on,") and retrans.observed.startswith("5 (")
    assert [c.name for c in checks] == [f"sockets[{i}]" for i in range(7)]


def test_power_cut_what_did_not_happen_fails_with_its_evidence(power_cut: Replayed) -> None:
    checks = checked(
        power_cut,
        {"host": "client", "state": "ESTAB", "during": "until-end"},
        {"host": "client", "reaches": "TIME-WAIT"},
        {"host": "client", "timer": "keepalive"},
        {"host": "client", "retrans": "<3"},
        {"host": "server", "reaches": "none"},
        {"host": "client", "state": "ESTAB", "during": "end"},
    )
    assert [c.passed for c in checks] == [False] * 6
    until_end, time_wait, keepalive, _, _, end = checks
    assert until_end.evidence[1].startswith("client.sockets.jsonl:")  # the sample it was gone at
    assert until_end.expected == "client: ESTAB until the end (each connection)"
    assert time_wait.observed.startswith("ESTAB +") and keepalive.observed.startswith("timers seen: on")
    assert end.observed.startswith("none at the end")


def test_a_selection_that_matches_nothing_fails_and_says_so(power_cut: Replayed) -> None:
    (check,) = checked(power_cut, {"host": "client", "port": 9999, "reaches": "ESTAB"})
    assert not check.passed and check.observed == "no connection of client in the captures matches"


def test_time_wait_on_the_client_after_its_close(tmp_path: Path) -> None:
    run = replay("normal_close", tmp_path)
    checks = checked(
        run,
        {"host": "client", "reaches": "TIME-WAIT"},
        {"host": "client", "state": "TIME-WAIT", "during": "until-end"},
        {"host": "client", "timer": "timewait"},
        {"host": "server", "never": "TIME-WAIT"},
        {"host": "server", "reaches": "none"},
    )
    assert [c.passed for c in checks] == [True] * 5, [(c.name, c.observed) for c in checks]


def test_keepalive_probes_out_on_the_timer(tmp_path: Path) -> None:
    run = replay("keepalive_on_cut", tmp_path)
    (check,) = checked(run, {"host": "client", "timer": "keepalive"})
    assert check.passed and "timer:(keepalive," in check.observed


def test_each_and_any_over_a_power_cycled_host(tmp_path: Path) -> None:
    run = replay("reboot_rst", tmp_path)
    # The old socket went with the first kernel: never "until the end"; gone, yes.
    each, gone = checked(
        run,
        {"host": "server", "state": "ESTAB", "during": "until-end", "of": "any"},
        {"host": "server", "reaches": "none", "of": "each"},
    )
    assert not each.passed and gone.passed
    assert " → none (with its kernel) +" in gone.observed


def test_a_bare_yaml_on_is_the_retransmission_timer(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace("{items}\n", "    - {host: client, timer: on}\n"))
    (item,) = load_scenario(path).expect.sockets
    assert item.timer == "on" and item.describe() == "client: timer:(on) at some sample (each connection)"
