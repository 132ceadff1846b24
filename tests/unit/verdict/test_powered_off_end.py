"""A host powered off and never on again has no socket at the end, whatever its last sample
listed: its sampler went with its kernel. Recorded (tcpscen run, kernel 6.18): the server
powered off 1 s into an idle IPv6 connection, the client's keep-alive aborting it 5 s later.
The server's last sample (before the power off) listed the socket ESTAB, and the verdict said
"half-open at the end: server still had it ESTAB, while client's kernel had forgotten it"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from orchestrator.scenario.loader import load_scenario
from orchestrator.tcp.analysis import analyze
from orchestrator.tcp.merge import merge_sent
from orchestrator.verdict.socket_verdict import judge_sockets
from tests.helpers.recorded_runs import write_timeline

RECORDED = Path(__file__).parent / "recorded" / "keepalive_power_off_v6"


def _judged(tmp_path: Path, t_end_delta: float = 0.0) -> list[str]:
    run_dir = tmp_path / "run"
    shutil.copytree(RECORDED, run_dir)
    scenario = load_scenario(run_dir / "scenario.yaml")
    notes = [json.loads(line) for line in (run_dir / "timeline.jsonl").read_text().splitlines()]
    t0 = next(float(n["t"]) for n in notes if n.get("kind") == "t0")
    t_end = next(float(n["t"]) for n in notes if n.get("kind") == "end") + t_end_delta
    hosts = json.loads((run_dir / "report-input.json").read_text())["hosts"]
    for host in hosts:
        write_timeline(run_dir, host["name"], [f"{host['name']}.ss-samples.txt"])
    (conn,) = analyze(merge_sent([(run_dir / c, h["address"]) for h in hosts for c in h["captures"]]))
    verdict = judge_sockets(scenario, run_dir, [(conn, {"client": "client", "server": "server"})], t0, t_end)
    assert verdict.timelines["server"].powered_off is (t_end_delta == 0.0)
    return verdict.notes


def test_the_powered_off_server_is_not_said_to_hold_the_socket_at_the_end(tmp_path: Path) -> None:
    notes = _judged(tmp_path)
    assert not [n for n in notes if "still had it" in n or "half-open" in n], notes


def test_a_run_that_ended_at_its_last_sample_reads_as_before(tmp_path: Path) -> None:
    """The same files judged as if the run had ended right after the server's last sample."""
    run = json.loads((RECORDED / "timeline.jsonl").read_text().splitlines()[-1])
    last = max(
        float(line.split(" t=")[1].split()[0])
        for line in (RECORDED / "server.ss-samples.txt").read_text().splitlines()
        if line.startswith("# tcpscen-ss ")
    )
    notes = _judged(tmp_path, last + 0.3 - float(run["t"]))
    assert [n for n in notes if "both kernels still had the connection ESTAB at the end" in n], notes
