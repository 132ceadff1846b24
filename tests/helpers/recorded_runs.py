"""Recorded runs (tests/unit/verdict/recorded/NAME/): the sampler's files and the captures of a
real run, replayed into a fresh run directory the way the runner finishes one: HOST.sockets.jsonl
written from the samples (in boot order), the scenario moved to the subnet the run had."""

from __future__ import annotations

import ipaddress
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.run.records import FaultRecord, parse_event
from orchestrator.scenario.loader import load_scenario
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.relocate import relocate
from orchestrator.tcp.analysis import analyze
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.merge import merge_sent
from orchestrator.verdict.judge import RunRecord, Verdict, judge
from orchestrator.verdict.socket_timeline import timeline_name, timeline_text

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests/unit/verdict/recorded"


@dataclass
class Replayed:
    run_dir: Path
    scenario: Scenario
    t0: float
    t_end: float
    connections: list[ConnectionSummary]
    events: list[dict[str, object]]

    def event_time(self, host: str, event: str) -> float:
        return float(next(e["t"] for e in self.events if e["host"] == host and e["event"] == event))  # type: ignore[arg-type]


def replay(name: str, into: Path) -> Replayed:
    run_dir = into / name
    shutil.copytree(RECORDED / name, run_dir)
    info = json.loads((run_dir / "report-input.json").read_text())
    addresses = {h["name"]: h["address"] for h in info["hosts"]}
    scenario = load_scenario(ROOT / f"scenarios/{name}.yaml")
    scenario = relocate(scenario, ipaddress.ip_network(f"{addresses['client']}/24", strict=False))
    notes = [json.loads(line) for line in (run_dir / "timeline.jsonl").read_text().splitlines()]
    t0 = next(float(n["t"]) for n in notes if n.get("kind") == "t0")
    t_end = next(float(n["t"]) for n in notes if n.get("kind") == "end")
    for host in info["hosts"]:
        boots = [f"{host['name']}.ss-samples.txt"] + [
            f"{c.removesuffix('.pcap')}.ss-samples.txt" for c in host["captures"][1:]
        ]
        write_timeline(run_dir, host["name"], boots)
    sources = [(run_dir / c, h["address"]) for h in info["hosts"] for c in h["captures"]]
    events = [
        json.loads(line)
        for path in sorted(run_dir.glob("*.events.jsonl"))
        for line in path.read_text().splitlines()
    ]
    return Replayed(run_dir, scenario, t0, t_end, analyze(merge_sent(sources)), events)


def write_timeline(run_dir: Path, host: str, files: list[str]) -> Path | None:
    """HOST.sockets.jsonl from sampler files, as a run writes it (through `timeline_text`)."""
    text = timeline_text(run_dir, files)
    if text is None:
        return None
    path = run_dir / timeline_name(host)
    path.write_text(text)
    return path


def rejudge(name: str, into: Path, edit: Callable[[Path], None] | None = None) -> Verdict:
    """The verdict of recorded run `name` (a whole run directory), judged again as the runner
    judges it: its captures, apps' events, applied faults, kernels' sockets and times (after
    `edit` has changed the copy, if given)."""
    run_dir = into / name
    shutil.copytree(RECORDED / name, run_dir)
    if edit is not None:
        edit(run_dir)
    info = json.loads((run_dir / "report-input.json").read_text())
    captures = {h["name"]: h["captures"] for h in info["hosts"]}
    events = [
        event
        for path in sorted(run_dir.glob("*.events.jsonl"))
        for line in path.read_text().splitlines()
        if (event := parse_event(line, path.name.split(".")[0])) is not None
    ]
    notes = [json.loads(line) for line in (run_dir / "timeline.jsonl").read_text().splitlines()]
    t0 = next(float(n["t"]) for n in notes if n.get("kind") == "t0")
    t_end = next(float(n["t"]) for n in notes if n.get("kind") == "end")
    faults = [FaultRecord(**n) for n in notes if "fault" in n]
    ends = {h: run_dir / f"{h}.ss.txt" for h in captures}
    sockets = {h: path.read_text() for h, path in ends.items() if path.exists()}
    scenario = load_scenario(ROOT / f"scenarios/{name}.yaml")
    return judge(scenario, RunRecord(run_dir, captures, events, faults, t0, sockets, t_end=t_end))
