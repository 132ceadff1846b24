"""Faults on a router, on the engine: it forgets every flow, its idle timeout changes, it loses
power, one of its cables is pulled. Each scenario is written here (none is shipped), short,
and judged by the router's own captures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.pcap.reader import read_tcp
from tests.integration.conftest import CliRun, tcpscen
from tests.integration.test_scenarios import addresses

pytestmark = pytest.mark.engine

TOPOLOGY = """
name: {name}
duration: {duration}
networks:
  inside: {{subnet: 10.77.{a}.0/24}}
  outside: {{subnet: 10.77.{b}.0/24}}
hosts:
  server:
    role: server
    networks: {{outside: 10.77.{b}.10}}
  nat:
    role: router
    networks: {{inside: 10.77.{a}.2, outside: 10.77.{b}.2}}
    nat: {{masquerade: outside}}
    conntrack: {{forgotten: drop}}
  client:
    role: client
    networks: {{inside: 10.77.{a}.20}}
    sysctls: {{net.ipv4.tcp_retries2: 3}}
    agent: {{mode: send, connect: "server:7000", {agent}}}
timeline:
{timeline}
"""


def run_here(
    tmp_path: Path, name: str, a: int, timeline: str, agent: str = "every: 500ms", duration: str = "15s"
) -> CliRun:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        TOPOLOGY.format(name=name, a=a, b=a + 1, timeline=timeline, agent=agent, duration=duration)
    )
    return tcpscen("run", path, runs_dir=tmp_path / "runs")


def died(r: CliRun) -> int:
    return int(r.verdict()["paths"]["routers"]["nat"]["died"])


def test_conntrack_flush_forgets_the_flow_and_its_packets_die_in_the_router(tmp_path: Path) -> None:
    r = run_here(
        tmp_path, "flush", 40, "  - {after: client.connected, at: 1s, fault: conntrack_flush, host: nat}"
    )
    assert r.verdict()["apps"]["client"]["sees"] == "ETIMEDOUT", r.stdout
    assert died(r) >= 3
    flushed = r.verdict()["faults"][0]["t_done"]
    late = [p for p in read_tcp(r.run_dir / "nat.outside.pcap") if p.payload_len and p.time > flushed + 0.1]
    assert late == []  # nothing of the connection left the router after the flush
    # The supervisor's own files, read out of the router before its container went.
    log = [json.loads(line) for line in (r.run_dir / "nat.middlebox.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log] == ["ready", "open", "flush"]
    assert "[NEW]" in (r.run_dir / "nat.conntrack.log").read_text()
    assert "masquerade" in (r.run_dir / "nat.rules.nft").read_text()


def test_idle_timeout_set_at_run_time_forgets_an_idle_flow(tmp_path: Path) -> None:
    r = run_here(
        tmp_path,
        "idle",
        42,
        "  - {after: client.connected, at: 500ms, fault: idle_timeout, host: nat, established: 2s}",
        agent="send_after: 5s, count: 1",
    )
    v = r.verdict()
    assert v["apps"]["client"]["sees"] == "ETIMEDOUT", r.stdout
    nat = v["paths"]["routers"]["nat"]
    assert nat["forgot_at"] is not None and died(r) >= 3
    # Forgotten about 2 s after the last packet (the handshake), not at Linux's 5 days.
    assert nat["forgot_at"] - v["t0"] < 4.5


def test_power_off_of_the_router_is_a_cut_for_both(tmp_path: Path) -> None:
    r = run_here(
        tmp_path, "routeroff", 44, "  - {after: client.connected, at: 1s, fault: power_off, host: nat}"
    )
    v = r.verdict()
    assert v["apps"]["client"]["sees"] == "ETIMEDOUT", r.stdout
    assert v["connection"]["retransmissions"]["client"] >= 3
    assert v["apps"]["server"]["sees"] == "nothing"
    # Its conntrack log was read out before the power went, not lost with the container.
    assert "[NEW]" in (r.run_dir / "nat.conntrack.log").read_text()


def test_a_rebooted_router_forwards_nothing_before_its_rules_and_captures(tmp_path: Path) -> None:
    """Power off, then on: the client still retransmits into it. Nothing may cross un-NATed or
    uncaptured while the new router starts: every segment the server got came from the
    router's outside address, and each one is in the router's outside capture of its boot."""
    r = run_here(
        tmp_path,
        "routercycle",
        56,
        "  - {after: client.connected, at: 1s, fault: power_off, host: nat}\n"
        "  - {after: client.connected, at: 2s, fault: power_on, host: nat}",
        duration="12s",
    )
    client, server = addresses(r)
    router_out = server.rsplit(".", 1)[0] + ".2"
    to_server = [p for p in read_tcp(r.run_dir / "server.pcap") if p.dst == server]
    assert to_server and {p.src for p in to_server} == {router_out}, {p.src for p in to_server}
    outside = [*read_tcp(r.run_dir / "nat.outside.pcap"), *read_tcp(r.run_dir / "nat.outside.boot2.pcap")]
    left = {(p.seq, p.flags, p.payload_len) for p in outside if p.dst == server}
    assert all((p.seq, p.flags, p.payload_len) in left for p in to_server)
    # The new router took the client's retransmissions in, and (conntrack empty, loose pickup
    # off) let none of them out.
    inside2 = [p for p in read_tcp(r.run_dir / "nat.inside.boot2.pcap") if p.src == client and p.payload_len]
    assert inside2, "the retransmissions reached the rebooted router's inside capture"
    assert died(r) >= len(inside2)
    log = (r.run_dir / "nat.middlebox.jsonl").read_text().splitlines()
    events = [json.loads(line)["event"] for line in log]
    assert events == ["ready", "open", "ready", "open"]  # both boots' logs, read out in turn
    assert r.verdict()["apps"]["client"]["sees"] == "ETIMEDOUT", r.stdout


def test_disconnecting_the_routers_outside_cable_kills_what_crosses_it(tmp_path: Path) -> None:
    r = run_here(
        tmp_path,
        "routercut",
        46,
        "  - {after: client.connected, at: 1s, fault: disconnect, host: nat, network: outside}",
    )
    v = r.verdict()
    # The router still takes the client's segments on the inside, and has nowhere to send them.
    assert died(r) >= 3, r.stdout
    assert v["apps"]["client"]["sees"] in ("ETIMEDOUT", "ENETUNREACH", "EHOSTUNREACH")
    assert {f["network"] for f in v["paths"]["routers"]["nat"]["died_frames"]} == {"inside"}


def test_a_published_port_reaches_the_server_inside_through_dnat(tmp_path: Path) -> None:
    path = tmp_path / "dnat.yaml"
    path.write_text(
        """
name: dnat_publish
duration: 10s
networks:
  inside: {subnet: 10.77.48.0/24}
  outside: {subnet: 10.77.49.0/24}
hosts:
  server: {role: server, networks: {inside: 10.77.48.10}}
  nat:
    role: router
    networks: {inside: 10.77.48.2, outside: 10.77.49.2}
    nat: {publish: [{port: 8080, to: "server:7000", network: outside}]}
  client:
    role: client
    networks: {outside: 10.77.49.20}
    agent: {mode: send, connect: "nat:8080", every: 200ms, count: 5, close_after: 2s}
"""
    )
    r = tcpscen("run", path, runs_dir=tmp_path / "runs")
    v = r.verdict()
    # The client talked to the router's port 8080, the server answered on 7000: one connection.
    assert {p.dport for p in read_tcp(r.run_dir / "client.pcap") if p.sport != 8080} == {8080}
    assert {p.sport for p in read_tcp(r.run_dir / "server.pcap") if p.dport != 7000} == {7000}
    assert v["paths"]["joined"] and v["connection"]["handshake"] == "complete"
    assert v["connection"]["close"] == "fin" and v["apps"]["server"]["sees"] == "eof"


def test_a_forgotten_flow_back_on_a_random_port_meets_the_servers_rst(tmp_path: Path) -> None:
    """Linux's loose pickup with `masquerade random`: the late segment leaves on a new port, the
    server's kernel has no socket for that 4-tuple and resets it; its own socket stays open."""
    path = tmp_path / "random.yaml"
    path.write_text(
        """
name: nat_random_port
duration: 10s
networks:
  inside: {subnet: 10.77.52.0/24}
  outside: {subnet: 10.77.53.0/24}
hosts:
  server: {role: server, networks: {outside: 10.77.53.10}}
  nat:
    role: router
    networks: {inside: 10.77.52.2, outside: 10.77.53.2}
    nat: {masquerade: outside, random: true}
    conntrack: {timeouts: {established: 3s}}
  client:
    role: client
    networks: {inside: 10.77.52.20}
    agent: {mode: send, connect: "server:7000", send_after: 5s, count: 1}
expect:
  apps: {client: {sees: ECONNRESET}}
  socket_at_end: {server: ESTAB}
  middlebox: {nat: {forgot: true, picked_up: false}}
"""
    )
    r = tcpscen("run", path, runs_dir=tmp_path / "runs")
    assert r.code == 0, r.stdout
    ports = [p.sport for p in read_tcp(r.run_dir / "nat.outside.pcap") if p.dport == 7000]
    assert len(set(ports)) == 2  # the handshake's port, then another one for the late segment
    assert r.verdict()["paths"]["routers"]["nat"]["same_port"] is False
