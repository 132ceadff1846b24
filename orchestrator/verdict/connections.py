"""Every TCP connection of a run, each judged from where its facts are true.

The merged stream of every host's own sends gives the connections and what each kernel did;
each end's own capture gives what that kernel experienced (`tcp.combine`), and the kernel
model predicts each end's fate from that same capture, with that host's settings. Each
connection knows which scenario hosts it joins, so expectations and apps can be matched to it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.kernel.predict import KernelPrediction, capture_end, predict_connection
from orchestrator.kernel.settings import KernelSettings, settings_of_host
from orchestrator.pcap.icmp import IcmpError
from orchestrator.pcap.reader import TcpPacket, read_tcp
from orchestrator.scenario.model import RouterHost, Scenario
from orchestrator.scenario.topology import attachments
from orchestrator.tcp.analysis import analyze
from orchestrator.tcp.combine import SIDES, Side, combine, find_same
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.contract import connection_json


@dataclass
class JudgedConnection:
    summary: ConnectionSummary  # each fact from where it is true
    hosts: dict[Side, str | None]  # the scenario host at each end (None: not one of the run's)
    predictions: dict[Side, KernelPrediction] = field(default_factory=dict)

    def host_side(self, host: str) -> Side | None:
        return next((side for side in SIDES if self.hosts[side] == host), None)

    def to_json(self) -> dict[str, Any]:
        out = connection_json(self.summary, list(self.predictions.values()))
        out["hosts"] = dict(self.hosts)
        return out


@dataclass
class HostView:
    """One host's own captures, analysed once: its connections and the ICMP errors they hold."""

    connections: list[ConnectionSummary]
    icmp: list[IcmpError]


Translate = Callable[[Iterable[TcpPacket]], Iterator[TcpPacket]]


def _unchanged(packets: Iterable[TcpPacket]) -> Iterator[TcpPacket]:
    yield from packets


def host_views(
    run_dir: Path, captures: dict[str, list[str]], translate: Translate = _unchanged
) -> dict[str, HostView]:
    """`translate`: a host's packets in the merged stream's terms (behind a NAT, the client's)."""
    views: dict[str, HostView] = {}
    for host, files in captures.items():
        readers = [read_tcp(run_dir / pcap) for pcap in files]
        conns = analyze(translate(heapq.merge(*readers, key=lambda p: p.time_ns))) if readers else []
        views[host] = HostView(conns, [e for r in readers for e in r.icmp_errors])
    return views


def judge_connections(
    scenario: Scenario,
    merged: list[ConnectionSummary],
    views: dict[str, HostView],
    t_end: float | None,
) -> list[JudgedConnection]:
    """Each merged connection with its hosts, its combined facts and each end's prediction."""
    settings = {name: settings_of_host(h) for name, h in scenario.apps().items()}
    out: list[JudgedConnection] = []
    for conn in merged:
        hosts: dict[Side, str | None] = {
            "client": host_at(scenario, conn.client),
            "server": host_at(scenario, conn.server),
        }
        own: dict[Side, ConnectionSummary | None] = {}
        judged = JudgedConnection(conn, hosts)
        for side in SIDES:
            host = hosts[side]
            view = views.get(host) if host is not None else None
            own[side] = find_same(view.connections, conn) if view is not None else None
            if host is None:
                continue
            # Each kernel's timers run on what reached it: predict from its own capture.
            seen = own[side] or conn
            # The observation lasts to the run's end, or to a later packet (one the teardown
            # let through): never shorter than the capture.
            last = capture_end([seen])
            end = max(t_end, last) if t_end is not None and last is not None else t_end or last
            found = predict_connection(
                seen, _settings_for(hosts, settings), view.icmp if view is not None else [], end
            )
            judged.predictions.update({p.side: p for p in found if p.side == side})
        judged.summary = combine(conn, own)
        out.append(judged)
    return out


def _settings_for(hosts: dict[Side, str | None], settings: dict[str, KernelSettings]) -> Any:
    def of(side: Side) -> KernelSettings:
        host = hosts[side]
        return settings[host] if host is not None else KernelSettings()

    return of


def host_at(scenario: Scenario, endpoint: str) -> str | None:
    """The app host at an endpoint: the one with that address on any of its networks, or, for a
    router's address and a port it publishes (DNAT), the host behind it."""
    address, _, port = endpoint.rpartition(":")
    address = address.strip("[]")

    def on(host: str) -> bool:
        return address in {str(a) for addrs in attachments(scenario, host).values() for a in addrs}

    for name in scenario.apps():
        if on(name):
            return name
    for name, spec in scenario.hosts.items():
        if isinstance(spec, RouterHost) and on(name):
            for pub in spec.nat.publish:
                if str(pub.port) == port:
                    return pub.target[0]
    return None


def main_connection(
    connections: list[JudgedConnection], client_host: str, endpoint: str | None
) -> JudgedConnection | None:
    """The connection the top-level expectations are about: the client host's (the one its app
    reported connecting from, else its first)."""
    if endpoint is not None:
        for c in connections:
            if endpoint in (c.summary.client, c.summary.server):
                return c
    return next((c for c in connections if client_host in c.hosts.values()), None)


def host_connection(
    connections: list[JudgedConnection], host: str, endpoint: str | None
) -> JudgedConnection | None:
    """A host's own connection: the one its app's outcome was about, else its first."""
    if endpoint is not None:
        for c in connections:
            if endpoint in (c.summary.client, c.summary.server) and host in c.hosts.values():
                return c
    return next((c for c in connections if host in c.hosts.values()), None)
