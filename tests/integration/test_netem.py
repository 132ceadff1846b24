"""netem: where the kernel has sch_netem, what reaches the host is really delayed; where it has
not (the machines this project is tested on), the run stops with exit 3 and says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backend.docker.engine import connect_engine
from orchestrator.backend.docker.probe import probe_engine
from orchestrator.pcap.reader import read_tcp
from tests.integration.conftest import tcpscen

pytestmark = pytest.mark.engine

SCENARIO = """\
name: netem_delay
duration: 10s
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: echo}}
  client:
    role: client
    address: 10.77.0.20
    agent: {mode: send, connect: "server:7000", every: 300ms, count: 8, close_after: 3500ms}
timeline:
  - {after: client.connected, at: 500ms, fault: netem, host: server, delay: 150ms}
expect:
  close: fin
"""


def test_netem_delays_or_says_why_not(tmp_path: Path) -> None:
    scenario = tmp_path / "netem.yaml"
    scenario.write_text(SCENARIO)
    netem = next(f for f in probe_engine(connect_engine()).findings if f.what == "netem").ok
    result = tcpscen("run", scenario, runs_dir=tmp_path / "runs")
    if not netem:
        assert result.code == 3, result.stdout + result.stderr
        assert "no netem qdisc (sch_netem)" in result.stdout + result.stderr
        return
    assert result.code == 0, result.stdout + result.stderr
    assert result.run_dir is not None
    delayed_at = result.verdict()["faults"][0]["t_done"]
    # Client data, then the server's echo: the round trip grows by the delay into the server.
    sent = [p for p in read_tcp(result.run_dir / "client.pcap") if p.payload_len and p.time > delayed_at]
    by_src: dict[str, list[float]] = {}
    for p in sent:
        by_src.setdefault(p.src, []).append(p.time)
    rtts = [b - a for a, b in zip(by_src["10.77.0.20"], by_src["10.77.0.10"], strict=False)]
    assert rtts and min(rtts) >= 0.14, rtts
