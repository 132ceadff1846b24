"""What a report shows about a run, as one typed model: built from the live objects right after
the verdict, or read back from the run directory's files alone (`tcpscen report RUN_DIR`).

The run directory holds verdict.json, the events, timeline.jsonl and the captures; the one thing
they do not say is which host had which address and capture (the scenario file is not stored,
and a run may have been moved to a free subnet). `report-input.json` records that; for a run
directory without it, the addresses come from the agents' own events and the captures from the
file names.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from orchestrator.agent.wire import Event
from orchestrator.kernel.predict import KernelPrediction, prediction_from_json
from orchestrator.run.records import AgentEvent, FaultRecord, parse_event
from orchestrator.scenario.model import Scenario
from orchestrator.verdict.expectations import Check
from orchestrator.verdict.judge import RunRecord, Verdict
from orchestrator.verdict.outcome import AppOutcome

INPUT_FILE = "report-input.json"
# Agent events that say something about the connection's life (sends and receives are counted).
SHOWN_EVENTS = (
    Event.LISTENING,
    Event.CONNECTING,
    Event.CONNECTED,
    Event.ACCEPTED,
    Event.BLOCKED,
    Event.UNBLOCKED,
    Event.EOF,
    Event.ERROR,
    Event.CLOSING,
    Event.CLOSED,
    Event.EXIT,
)


@dataclass(frozen=True)
class HostView:
    name: str
    role: str
    address: str
    captures: list[str]


@dataclass
class RunView:
    scenario: str
    run_dir: Path
    hosts: list[HostView]
    t0: float | None = None
    description: str = ""
    has_verdict: bool = False
    checks: list[Check] = field(default_factory=list)
    predictions: dict[str, KernelPrediction] = field(default_factory=dict)
    apps: dict[str, AppOutcome] = field(default_factory=dict)
    faults: list[FaultRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stream: int | None = None  # the verdict's connection (tcp.stream), drawn first
    events: list[AgentEvent] = field(default_factory=list)
    t_end: float | None = None  # when the observation ended (the socket lanes stop there)
    # Every connection of the run, as verdict.json lists them (the contract's fields, hosts,
    # predictions): the report's table of connections.
    connections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.has_verdict and all(c.passed for c in self.checks)

    def sources(self) -> list[tuple[Path, str]]:
        """(capture path, the capturing host's address), as `merge_sent` takes them."""
        return [
            (self.run_dir / f, h.address)
            for h in self.hosts
            for f in h.captures
            if h.address and (self.run_dir / f).exists()
        ]

    @property
    def addresses_known(self) -> bool:
        return all(h.address for h in self.hosts)

    def shown_events(self) -> list[AgentEvent]:
        return [e for e in self.events if e.event in SHOWN_EVENTS]


def view_of_run(scenario: Scenario, verdict: Verdict, record: RunRecord) -> RunView:
    hosts = [
        HostView(name, h.role, str(h.address), list(record.captures.get(name, [])))
        for name, h in scenario.hosts.items()
    ]
    return RunView(
        scenario.name,
        record.run_dir,
        hosts,
        record.t0,
        scenario.description,
        True,
        list(verdict.checks),
        dict(verdict.predictions),
        dict(verdict.apps),
        list(verdict.faults),
        list(verdict.notes),
        verdict.connection.stream if verdict.connection else None,
        sorted(record.events, key=lambda e: e.t),
        t_end=record.t_end,
        connections=[c.to_json() for c in verdict.connections],
    )


def input_json(view: RunView) -> str:
    """What the run directory cannot say by itself, for `tcpscen report`."""
    data = {
        "scenario": view.scenario,
        "description": view.description,
        "t0": view.t0,
        "hosts": [asdict(h) for h in view.hosts],
    }
    return json.dumps(data, indent=2) + "\n"


def load_view(run_dir: Path) -> RunView:
    """The run directory's files alone. Raises OSError/ValueError on a directory that is not a run's."""
    events = _events(run_dir)
    timeline = _jsonl(run_dir / "timeline.jsonl")
    verdict = _json(run_dir / "verdict.json")
    saved = _json(run_dir / INPUT_FILE)
    if saved is not None:
        hosts = [HostView(h["name"], h["role"], h["address"], list(h["captures"])) for h in saved["hosts"]]
        name, description, t0 = saved["scenario"], saved.get("description", ""), saved.get("t0")
    else:
        hosts = _guess_hosts(run_dir, events)
        name = next((str(n["name"]) for n in timeline if n.get("kind") == "scenario"), run_dir.name)
        description = ""
        t0 = next((float(n["t"]) for n in timeline if n.get("kind") == "t0"), None)
    if not hosts:
        raise ValueError(f"{run_dir}: no captures (*.pcap) and no {INPUT_FILE}: not a run directory")
    t_end = next((float(n["t"]) for n in timeline if n.get("kind") == "end"), None)
    view = RunView(name, run_dir, hosts, t0, description, events=events, t_end=t_end)
    view.faults = [_fault(n) for n in timeline if "fault" in n]
    if verdict is not None:
        _apply_verdict(view, verdict)
    return view


def _apply_verdict(view: RunView, data: dict[str, Any]) -> None:
    view.has_verdict = True
    view.t0 = data.get("t0", view.t0)
    view.checks = [Check(**c) for c in data.get("checks", [])]
    view.apps = {k: AppOutcome(**v) for k, v in data.get("apps", {}).items()}
    view.predictions = {k: prediction_from_json(v) for k, v in data.get("predictions", {}).items()}
    view.faults = [_fault(f) for f in data.get("faults", [])] or view.faults
    view.notes = list(data.get("notes", []))
    conn = data.get("connection")
    view.stream = int(conn.get("stream", 0)) if conn else None
    view.connections = [c for c in data.get("connections", []) if isinstance(c, dict)]


def _fault(raw: dict[str, Any]) -> FaultRecord:
    """A fault as the journal wrote it; keys this version does not know are left aside."""
    known = {f.name for f in fields(FaultRecord)}
    return FaultRecord(**{k: v for k, v in raw.items() if k in known})


def _events(run_dir: Path) -> list[AgentEvent]:
    out: list[AgentEvent] = []
    for path in sorted(run_dir.glob("*.events.jsonl")):
        host = path.name.removesuffix(".events.jsonl")
        for line in path.read_text(errors="replace").splitlines():
            event = parse_event(line, host)
            if event is not None:
                out.append(event)
    return sorted(out, key=lambda e: e.t)


def _guess_hosts(run_dir: Path, events: list[AgentEvent]) -> list[HostView]:
    """Older run directories: captures by file name (HOST.pcap, HOST.boot2.pcap), the address and
    role from what the host's agent reported (its own end of its connection)."""
    captures: dict[str, list[str]] = {}
    for path in sorted(run_dir.glob("*.pcap")):
        captures.setdefault(path.name.split(".", 1)[0], []).append(path.name)
    hosts = []
    for name, files in captures.items():
        mine = [e for e in events if e.host == name]
        local = next(
            (e.local for e in mine if e.local and e.event in (Event.CONNECTED, Event.ACCEPTED)), None
        )
        config = next((e.extra.get("config") for e in mine if e.event == Event.START), None)
        role = str(config.get("role", "")) if isinstance(config, dict) else ""
        # An unknown address ("") makes the report draw each capture on its own.
        hosts.append(HostView(name, role, local.rsplit(":", 1)[0] if local else "", files))
    return hosts


def _json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if isinstance(raw, dict):
            out.append(raw)
    return out
