"""report.html for a run of many connections: a table of every one first, the first few drawn,
the rest folded or listed; judged by the real verdict code from crafted captures."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.report import html
from orchestrator.report.artifacts import write_artifacts
from orchestrator.run.records import AgentEvent
from orchestrator.scenario.loader import parse_scenario
from orchestrator.scenario.yamlpos import load_located
from orchestrator.verdict.judge import RunRecord, judge
from tests.helpers.pcaps import T0, Conv, write_fast

N = 200
SCENARIO = f"""\
name: big_pool
duration: 30s
hosts:
  server: {{role: server, address: 10.77.0.10, agent: {{mode: echo, port: 7000}}}}
  client:
    role: client
    address: 10.77.0.20
    agent: {{mode: pool, connect: "server:7000", connections: {N}}}
expect:
  connections:
    - {{select: {{client: client}}, count: {N}, close: rst, rst_from: server}}
"""


def big_run(run_dir: Path) -> str:
    run_dir.mkdir()
    first = Conv(client=("10.77.0.20", 40000), server=("10.77.0.10", 7000))
    segs = first.segs
    t = T0
    for n in range(N):
        c = Conv(client=("10.77.0.20", 40000 + n), server=("10.77.0.10", 7000), t=t, segs=segs)
        c.handshake()
        c.data("c", 64)
        c.data("s", 64, dt=0.001)
        c.rst("s", dt=1.0)
        t += 0.01
    segs.sort(key=lambda s: s.t)
    write_fast(run_dir / "client.pcap", segs)
    write_fast(run_dir / "server.pcap", segs)
    (run_dir / "timeline.jsonl").write_text(json.dumps({"kind": "t0", "t": T0}) + "\n")
    sc = parse_scenario(load_located(SCENARIO), "big_pool.yaml")
    events = [AgentEvent("client", "connected", T0 + 0.001, local="10.77.0.20:40000", peer="10.77.0.10:7000")]
    record = RunRecord(run_dir, {"client": ["client.pcap"], "server": ["server.pcap"]}, events, [], T0)
    verdict = judge(sc, record)
    assert len(verdict.connections) == N
    assert [c.passed for c in verdict.checks if c.name == "connections[0]"] == [True]
    write_artifacts(run_dir, sc, verdict, record)
    return (run_dir / "report.html").read_text()


def test_many_connections_open_with_a_table_and_draw_a_few(tmp_path: Path) -> None:
    page = big_run(tmp_path / "run")
    table = page[
        page.index('<section id="connections">') : page.index("</section>", page.index('id="connections"'))
    ]
    assert table.count('<tr><td><a href="#stream-') == N
    assert "rst by server" in table
    drawn = page.count('<svg class="ladder"')
    assert 1 <= drawn <= html.MAX_CONNECTIONS
    assert page.count('<details class="connection"') == drawn - 1  # folded beyond the first
    assert f"{N - drawn} more connections" in page or page.count("<li>stream ") == N - drawn
