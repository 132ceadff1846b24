"""A run directory made without Docker, for the report tests: the power_cut story told by
crafted captures, the agents' events and the timeline, judged by the real verdict code.

The client sends 64 bytes every 200 ms and the server echoes them; at CUT the server's cable
goes; the client's next send and its retransmissions (gaps 0.2, 0.4, 0.8, 1.6 s) are in the
client's capture only; the app sees ETIMEDOUT.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from orchestrator.run.records import AgentEvent, FaultRecord
from orchestrator.scenario.loader import parse_scenario
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.yamlpos import load_located
from orchestrator.verdict.judge import RunRecord, Verdict, judge
from tests.helpers.pcaps import T0, Conv, write_scapy

CLIENT = ("10.77.0.20", 40000)
SERVER = ("10.77.0.10", 7000)
EXCHANGES = 6
CUT = T0 + 0.1 + EXCHANGES * 0.2  # after the last echo
RETX_GAPS = (0.2, 0.4, 0.8, 1.6)
TIMEDOUT = T0 + 6.0

SCENARIO = """\
name: power_cut
description: Server network cut while the client sends.
duration: 30s
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: echo, port: 7000}}
  client:
    role: client
    address: 10.77.0.20
    sysctls: {net.ipv4.tcp_retries2: 5}
    agent: {mode: send, connect: "server:7000", every: 200ms}
timeline:
  - {after: client.connected, at: 1s, fault: disconnect, host: server}
expect:
  close: none
  retransmissions: {client: ">=4"}
  backoff: doubling
  apps:
    client: {sees: ETIMEDOUT}
    server: {sees: ECONNRESET}
"""


def scenario() -> Scenario:
    return parse_scenario(load_located(SCENARIO), "power_cut.yaml")


def conversation() -> tuple[Conv, int]:
    """The segments, and how many of them were sent before the cut."""
    c = Conv(client=CLIENT, server=SERVER, t=T0 + 0.1)
    c.handshake()
    for _ in range(EXCHANGES):
        c.data("c", 64, dt=0.19)
        c.data("s", 64, dt=0.001)
        c.ack("c", dt=0.001)
    before = len(c.segs)
    first = c.data("c", 64, dt=CUT + 0.05 - c.t)
    for gap in RETX_GAPS:
        c.retransmit("c", first, dt=gap)
    return c, before


def events() -> list[AgentEvent]:
    local, peer = f"{CLIENT[0]}:{CLIENT[1]}", f"{SERVER[0]}:{SERVER[1]}"
    return [
        AgentEvent("server", "listening", T0 - 0.02),
        AgentEvent("client", "connecting", T0 + 0.099, peer=peer),
        AgentEvent("client", "connected", T0 + 0.1011, local=local, peer=peer),
        AgentEvent("server", "accepted", T0 + 0.1012, local=peer, peer=local),
        AgentEvent("client", "sent", T0 + 0.29, extra={"bytes": 64}),
        AgentEvent("client", "error", TIMEDOUT, errno="ETIMEDOUT", op="recv"),
        AgentEvent("client", "closed", TIMEDOUT + 0.001),
    ]


def make_run(run_dir: Path) -> tuple[Scenario, Verdict, RunRecord]:
    """Write the run's files as the runner does, and judge them; the reports are not written."""
    run_dir.mkdir(parents=True, exist_ok=True)
    conv, before = conversation()
    write_scapy(run_dir / "client.pcap", conv.segs, link="sll2")
    write_scapy(run_dir / "server.pcap", conv.segs[:before], link="sll2")
    evs = events()
    for host in ("client", "server"):
        lines = [
            json.dumps({"t": e.t, "host": e.host, "event": e.event, **_fields(e)})
            for e in evs
            if e.host == host
        ]
        (run_dir / f"{host}.events.jsonl").write_text("\n".join(lines) + "\n")
    fault = FaultRecord(0, "disconnect", "server", CUT, "server network cut")
    (run_dir / "timeline.jsonl").write_text(
        json.dumps({"kind": "scenario", "name": "power_cut"})
        + "\n"
        + json.dumps({"kind": "t0", "t": T0})
        + "\n"
        + fault.to_json()
        + "\n"
    )
    sc = scenario()
    record = RunRecord(run_dir, {"client": ["client.pcap"], "server": ["server.pcap"]}, evs, [fault], T0)
    return sc, judge(sc, record), record


def write_verdict(run_dir: Path, verdict: Verdict) -> None:
    (run_dir / "verdict.json").write_text(json.dumps(verdict.to_json(), indent=2))


def _fields(e: AgentEvent) -> dict[str, object]:
    raw = {k: v for k, v in asdict(e).items() if k not in ("host", "event", "t", "extra") and v is not None}
    return {**raw, **e.extra}
