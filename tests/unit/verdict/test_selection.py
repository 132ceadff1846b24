"""Expectations about chosen connections: selection, how many must match, and a selection that
finds nothing failing loudly; and every connection of a run judged with its hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.scenario.loader import parse_scenario
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.yamlpos import load_located
from orchestrator.tcp.analysis import analyze_file
from orchestrator.verdict.connections import HostView, JudgedConnection, judge_connections
from orchestrator.verdict.selection import check_selections
from tests.helpers.pcaps import Conv

SCENARIO = """\
name: pool
duration: 10s
hosts:
  server: {{role: server, address: 10.77.0.10, agent: {{mode: echo, port: 7000}}}}
  a: {{role: client, address: 10.77.0.21, agent: {{mode: idle, connect: "server:7000"}}}}
  b: {{role: client, address: 10.77.0.22, agent: {{mode: idle, connect: "server:7000"}}}}
expect:
  connections:
{connections}
"""


def scenario(connections: str) -> Scenario:
    return parse_scenario(load_located(SCENARIO.format(connections=connections)), "pool.yaml")


def pool(tmp_path: Path) -> list[JudgedConnection]:
    """a opens three connections: two reset by the server, one closed by FIN; b one, closed."""
    c = Conv(client=("10.77.0.21", 40001), server=("10.77.0.10", 7000))
    segs = c.segs
    for port, how in ((40001, "rst"), (40002, "rst"), (40003, "fin")):
        k = Conv(client=("10.77.0.21", port), server=("10.77.0.10", 7000), t=c.t + 0.1, segs=segs)
        k.handshake()
        k.data("c", 10)
        if how == "rst":
            k.rst("s")
        else:
            k.fin("s")
            k.fin("c")
            k.ack("s")
        c.t = k.t
    b = Conv(client=("10.77.0.22", 41000), server=("10.77.0.10", 7000), t=c.t + 0.1, segs=segs)
    b.handshake()
    b.fin("c")
    b.fin("s")
    b.ack("c")
    analysis = analyze_file(c.write(tmp_path / "all.pcap"))
    sc = scenario("    - {count: 1}")
    return judge_connections(sc, analysis.connections, {"server": HostView(analysis.connections, [])}, None)


def checks(connections: list[JudgedConnection], yaml: str) -> list[tuple[bool, str, str]]:
    return [(c.passed, c.expected, c.observed) for c in check_selections(scenario(yaml), connections, None)]


def test_every_connection_knows_its_hosts(tmp_path: Path) -> None:
    conns = pool(tmp_path)
    assert [(c.hosts["client"], c.hosts["server"]) for c in conns] == [("a", "server")] * 3 + [
        ("b", "server")
    ]
    assert conns[0].to_json()["hosts"] == {"client": "a", "server": "server"}


@pytest.mark.parametrize(
    ("yaml", "passed", "observed"),
    [
        ("    - {select: {client: a}, count: 3, close: rst}", False, "3 selected, 2 show it"),
        ("    - {select: {client: a}, match: any, close: fin}", True, "3 selected, 1 show it"),
        ("    - {select: {client: a}, match: 2, rst_from: server}", True, "3 selected, 2 show it"),
        ("    - {select: {client: a}, match: '>=3', rst_from: server}", False, "3 selected, 2 show it"),
        ("    - {select: {client: b}, close: fin, initiator: client}", True, "1 selected, 1 show it"),
        ("    - {select: {client: a, order: 3}, close: fin}", True, "1 selected, 1 show it"),
        ("    - {count: 4, handshake: complete}", True, "4 selected, 4 show it"),
        ("    - {count: 5}", False, "4 selected, 4 show it"),
    ],
)
def test_selections_and_how_many_must_match(tmp_path: Path, yaml: str, passed: bool, observed: str) -> None:
    [(ok, _, seen)] = checks(pool(tmp_path), yaml)
    assert (ok, seen) == (passed, observed)


def test_a_selection_that_matches_nothing_fails_and_says_so(tmp_path: Path) -> None:
    [(ok, _, seen)] = checks(pool(tmp_path), "    - {select: {port: 8080}, close: rst}")
    assert not ok and seen == "the selection matched none of the 4 connections"


def test_the_misses_are_the_evidence(tmp_path: Path) -> None:
    [check] = check_selections(scenario("    - {select: {client: a}, close: rst}"), pool(tmp_path), None)
    assert check.evidence == ["10.77.0.21:40003 -> 10.77.0.10:7000: close: fin"]


def test_an_entry_that_says_nothing_and_an_unknown_host_are_refused() -> None:
    from orchestrator.errors import ScenarioError  # noqa: PLC0415

    with pytest.raises(ScenarioError) as err:
        scenario("    - {select: {client: a}}")
    assert "expect.connections[0]" in str(err.value) and "says nothing to check" in str(err.value)
    with pytest.raises(ScenarioError) as err:
        scenario("    - {select: {client: a}, close: rst}\n    - {select: {client: ghost}, close: rst}")
    assert "pool.yaml:10: expect.connections[1].select.client: unknown host 'ghost'" in str(err.value)
