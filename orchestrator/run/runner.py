"""The run loop: backend up -> captures ready -> apps -> faults on the timeline -> captures closed
-> verdict, with the journal finished in `finally`. Progress goes to an observer; this never prints.

It drives any `backend.base.Backend`: the Docker one by default, a fake one in the unit tests."""

from __future__ import annotations

import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator.agent.config import agent_config
from orchestrator.backend.base import Backend, BackendFactory
from orchestrator.errors import EngineError, TcpscenError
from orchestrator.faults import FaultContext, apply_step, needs_net_admin
from orchestrator.report.artifacts import write_artifacts
from orchestrator.run.journal import Journal
from orchestrator.run.observer import Observer
from orchestrator.run.records import AgentEvent, FaultRecord, NotApplied, parse_event
from orchestrator.run.schedule import Pending, Schedule
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.steps import Step
from orchestrator.scenario.topology import subnets_of
from orchestrator.verdict.judge import RunRecord, Verdict, judge


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    verdict: Verdict | None = None
    error: TcpscenError | None = None
    events: list[AgentEvent] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    captures: dict[str, list[str]] = field(default_factory=dict)
    not_applied: list[NotApplied] = field(default_factory=list)
    t0: float | None = None
    t_end: float | None = None  # when the observation ended (the captures closed)
    scenario: Scenario | None = None  # as it really ran (moved to a free subnet if need be)


class CancelledError(TcpscenError):
    """The run was asked to stop (Ctrl-C or SIGTERM in another thread's run)."""

    exit_code = 130


def new_run(scenario: Scenario, runs_root: Path) -> RunResult:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9_-]+", "-", scenario.name.lower()).strip("-")[:40] or "scenario"
    run_id = f"{slug}-{stamp}-{secrets.token_hex(2)}"
    runs_root.mkdir(parents=True, exist_ok=True)
    run_dir = runs_root / f"{slug}-{stamp}"
    try:
        run_dir.mkdir()
    except FileExistsError:  # the same scenario started in the same second (-j, --repeat)
        run_dir = runs_root / run_id
        run_dir.mkdir()
    return RunResult(run_id=run_id, run_dir=run_dir)


def run_scenario(
    scenario: Scenario,
    result: RunResult,
    observer: Observer,
    backend: BackendFactory,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run one scenario on `backend`. `cancel`, when set from another thread, stops it cleanly
    (parallel runs)."""
    cancel = cancel or threading.Event()
    journal = Journal(result.run_dir)
    inbox: queue.Queue[AgentEvent] = queue.Queue()

    def on_line(host: str, line: str) -> None:
        journal.agent_line(host, line)
        event = parse_event(line, host)
        if event is not None:
            inbox.put(event)

    journal.note("scenario", name=scenario.name, run_id=result.run_id, started=time.time())
    try:
        net_admin = needs_net_admin(list(scenario.timeline))
        with backend(scenario, result.run_id, result.run_dir, on_line, observer.step, net_admin) as lab:
            observer.step("checking images")
            lab.prepare()
            observer.step("starting hosts and captures")
            wanted = subnets_of(scenario)
            scenario = result.scenario = lab.create_network()
            if subnets_of(scenario) != wanted:
                observer.step(f"{wanted} is taken; this run uses {subnets_of(scenario)}")
            journal.note("network", subnet=subnets_of(scenario))
            observer.started(result.run_dir, scenario)
            lab.boot_hosts()
            _drive(scenario, lab, result, inbox, journal, observer, cancel)
            lab.check_health()
            # Before teardown: the kernels' own view of the sockets.
            sockets = {name: lab.host(name).sockets() for name in scenario.hosts}
            for name, text in sockets.items():
                journal.write_text(f"{name}.ss.txt", text)
            observer.step("closing captures")
            result.t_end = time.time()
        result.captures = {name: list(lab.host(name).captures) for name in scenario.hosts}
        _drain(inbox, result, observer)
        for name, files in lab.logs().items():
            for suffix, text in files.items():
                journal.write_text(f"{name}.{suffix}", text)
        observer.step("judging the packets")
        record = RunRecord(
            result.run_dir,
            result.captures,
            result.events,
            result.faults,
            result.t0,
            sockets,
            not_applied=result.not_applied,
            t_end=result.t_end,
        )
        result.verdict = judge(scenario, record)
        write_artifacts(result.run_dir, scenario, result.verdict, record)
    except TcpscenError as exc:
        result.error = exc
    except BaseException as exc:  # Ctrl-C, SIGTERM: the lab is already cleaned up; say so in the journal
        journal.note("interrupted", reason=type(exc).__name__)
        raise
    finally:
        journal.note("end", t=time.time(), error=str(result.error) if result.error else None)
        if result.verdict is not None:
            journal.write_json("verdict.json", result.verdict.to_json())
        journal.close()
    return result


def _drive(
    scenario: Scenario,
    lab: Backend,
    result: RunResult,
    inbox: queue.Queue[AgentEvent],
    journal: Journal,
    observer: Observer,
    cancel: threading.Event,
) -> None:
    servers = [n for n, h in scenario.hosts.items() if h.role == "server"]
    clients = [n for n, h in scenario.hosts.items() if h.role == "client"]
    for name in servers:
        lab.host(name).start_app(agent_config(scenario, name))  # returns once it listens
    observer.step("traffic started")
    result.t0 = t0 = time.time()
    journal.note("t0", t=t0)
    schedule = Schedule.of(list(scenario.timeline), t0)
    # Steps at 0s take effect before any client starts (a server blackholed before the first
    # SYN): applied and waited for here, not raced against the clients' connects.
    for pending in schedule.due(t0):
        _applied(pending.index, pending.step, lab, result, journal, observer)
    for name in clients:
        lab.host(name).start_app(agent_config(scenario, name))
    deadline = t0 + scenario.duration
    next_check = t0 + 1.0
    ended = "the duration"
    while time.time() < deadline:
        if cancel.is_set():
            raise CancelledError("cancelled")
        if time.time() >= next_check:
            lab.check_health()  # an engine restart kills the hosts: stop with exit 3, not a false verdict
            next_check = time.time() + 1.0
        wake = min(deadline, schedule.next_due() or deadline, time.time() + 0.1)
        try:
            event = inbox.get(timeout=max(0.0, wake - time.time()))
            _record(event, result, observer)
            schedule.observe(event)
        except queue.Empty:
            pass
        for pending in schedule.due(time.time()):
            _applied(pending.index, pending.step, lab, result, journal, observer)
        if not schedule.has_timed() and not any(lab.host(c).app_running() for c in clients):
            observer.step("clients finished; letting the last packets settle")
            time.sleep(min(scenario.settle, max(0.0, deadline - time.time())))
            ended = "the clients finished"
            break
    else:
        observer.step(f"duration {scenario.duration:g}s reached")
    _drain(inbox, result, observer)
    end = time.time()
    for pending in schedule.pending:
        reason = not_applied_reason(pending, result.events, t0, end, ended)
        result.not_applied.append(NotApplied(pending.index, pending.step.fault, pending.step.host, reason))
        journal.note("not-applied", index=pending.index, fault=pending.step.fault, reason=reason)
        observer.step(
            f"timeline[{pending.index}] {pending.step.fault} on {pending.step.host} not applied: {reason}"
        )


def not_applied_reason(pending: Pending, events: list[AgentEvent], t0: float, end: float, ended: str) -> str:
    """Why a step never ran, in words that are true: its event never came, or it came but the
    step's time fell after the run ended."""
    step = pending.step
    if pending.due is None and step.after is not None:
        host = step.after.split(".", 1)[0]
        seen = sorted({e.event for e in events if e.host == host})
        told = f"{host} reported {', '.join(seen)}" if seen else f"{host} reported no events"
        return f"{step.after} never happened ({told})"
    due = pending.due if pending.due is not None else t0 + step.at
    armed = f" ({step.after} at +{due - step.at - t0:.3f}s, then {step.at:g}s)" if step.after else ""
    return f"due at +{due - t0:.3f}s{armed}, after the run ended at +{end - t0:.3f}s ({ended})"


def _applied(
    index: int, step: Step, lab: Backend, result: RunResult, journal: Journal, observer: Observer
) -> None:
    record = _apply(index, step, lab, observer)
    result.faults.append(record)
    journal.fault(record)


def _apply(index: int, step: Step, lab: Backend, observer: Observer) -> FaultRecord:
    t = time.time()
    try:
        detail = apply_step(step, FaultContext(lab.host(step.host), lab.wire()))
        record = FaultRecord(index, step.fault, step.host, t, detail, t_done=time.time())
    except Exception as exc:
        if isinstance(exc, EngineError):
            raise
        record = FaultRecord(
            index, step.fault, step.host, t, error=f"{type(exc).__name__}: {exc}", t_done=time.time()
        )
    observer.fault(record)
    return record


def _record(event: AgentEvent, result: RunResult, observer: Observer) -> None:
    result.events.append(event)
    observer.event(event)


def _drain(inbox: queue.Queue[AgentEvent], result: RunResult, observer: Observer) -> None:
    while True:
        try:
            _record(inbox.get_nowait(), result, observer)
        except queue.Empty:
            return
