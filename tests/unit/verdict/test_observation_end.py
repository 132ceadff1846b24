"""A prediction is judged against the observation's end: the run's, or a packet after it.
Measured: a retransmission captured 0.45 s after the run's end (the teardown) read "still
retransmitting when the capture ended, +-0.451 s after the first retransmission"."""

from __future__ import annotations

from pathlib import Path

from orchestrator.scenario.loader import parse_scenario
from orchestrator.scenario.yamlpos import load_located
from orchestrator.tcp.analysis import analyze_file
from orchestrator.verdict.connections import HostView, judge_connections
from tests.helpers.pcaps import Conv

SCENARIO = """\
name: end
duration: 10s
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: echo, port: 80}}
  client: {role: client, address: 10.77.0.20, agent: {mode: send, connect: "server:80"}}
"""


def _judged(tmp_path: Path, t_end_after: float) -> str:
    c = Conv(client=("10.77.0.20", 40000), server=("10.77.0.10", 80))
    c.handshake()
    c.data("c", 100)
    c.ack("s")
    sent = c.data("c", 100, dt=0.2)
    c.retransmit("c", sent, dt=0.21)
    last = c.retransmit("c", sent, dt=0.42)
    analysis = analyze_file(c.write(tmp_path / "c.pcap"))
    (conn,) = analysis.connections
    t_last = conn.last_frame.time if conn.last_frame else 0.0
    sc = parse_scenario(load_located(SCENARIO), "end.yaml")
    view = HostView(analysis.connections, [])
    (judged,) = judge_connections(
        sc, analysis.connections, {"client": view, "server": view}, t_last + t_end_after
    )
    assert last == len(c.segs)
    return judged.predictions["client"].observed


def test_a_packet_after_the_runs_end_extends_the_observation(tmp_path: Path) -> None:
    observed = _judged(tmp_path, -0.3)
    assert "+-" not in observed
    assert observed.startswith("still retransmitting when the capture ended, +0.420 s after the first")


def test_the_runs_end_after_the_last_packet_counts(tmp_path: Path) -> None:
    assert _judged(tmp_path, 0.5).startswith("still retransmitting when the capture ended, +0.920 s after")
