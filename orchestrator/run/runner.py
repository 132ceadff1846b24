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
from orchestrator.errors import EngineError, StorageError, TcpscenError
from orchestrator.faults import FaultContext, apply_step, needs_net_admin
from orchestrator.report.artifacts import write_artifacts
from orchestrator.run.journal import Journal
from orchestrator.run.observer import Observer
from orchestrator.run.records import AgentEvent, FaultRecord, NotApplied, parse_event
from orchestrator.run.schedule import Pending, Schedule
from orchestrator.rundir import RunDir, make_dirs
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.steps import Step
from orchestrator.scenario.topology import subnets_of
from orchestrator.verdict.judge import RunRecord, Verdict, judge
from orchestrator.verdict.socket_timeline import timeline_name, timeline_text

# How often each kernel's sockets are sampled (HOST.sockets.jsonl): 100-250 ms shows each RTO
# backoff step and keepalive probe, and costs about 10 ms of CPU a sample (5 % of a core per host).
SAMPLE_INTERVAL_S = 0.2


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
    started: float | None = None  # when the caller started run_scenario and it returned
    ended: float | None = None

    @property
    def seconds(self) -> float | None:
        return self.ended - self.started if self.started is not None and self.ended is not None else None


class CancelledError(TcpscenError):
    """The run was asked to stop (Ctrl-C or SIGTERM in another thread's run)."""

    exit_code = 130


def new_run(scenario: Scenario, runs_root: Path) -> RunResult:
    """A new, private run directory: never one that exists (whoever made it)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9_-]+", "-", scenario.name.lower()).strip("-")[:40] or "scenario"
    run_id = f"{slug}-{stamp}-{secrets.token_hex(2)}"
    run_dir = runs_root / f"{slug}-{stamp}"
    try:
        make_dirs(runs_root)
        try:
            RunDir.create(run_dir).close()
        except FileExistsError:  # the same scenario started in the same second (-j, --repeat)
            run_dir = runs_root / run_id
            RunDir.create(run_dir).close()
    except OSError as exc:
        raise StorageError(f"cannot create the run directory {run_dir}: {exc.strerror or exc}") from None
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
    files = RunDir.open(result.run_dir)
    journal = Journal(files)
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
            journal.check()
            for name in scenario.apps():  # a router's own sockets are none of the run's
                lab.host(name).sample_sockets(SAMPLE_INTERVAL_S)
            _drive(scenario, lab, result, inbox, journal, observer, cancel)
            lab.check_health()
            journal.check()
            # Before teardown: the kernels' own view of the sockets.
            sockets = {name: lab.host(name).sockets() for name in scenario.hosts}
            for name, text in sockets.items():
                journal.write_text(f"{name}.ss.txt", text)
            observer.step("closing captures")
            result.t_end = time.time()
        _keep(lab, scenario, result, journal)
        _drain(inbox, result, observer)
        journal.check()  # the captures are whole: else no verdict
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
        _finish(files, journal, result)
    return result


def _keep(lab: Backend, scenario: Scenario, result: RunResult, journal: Journal) -> None:
    """What the torn-down hosts leave in the run directory: their captures' names, each
    kernel's socket timeline, and their logs."""
    result.captures = {name: list(lab.host(name).captures) for name in scenario.hosts}
    for name in scenario.hosts:
        text = timeline_text(result.run_dir, lab.host(name).socket_samples)
        if text is not None:
            journal.write_text(timeline_name(name), text)
    for name, logs in lab.logs().items():
        for suffix, text in logs.items():
            journal.write_text(f"{name}.{suffix}", text)


def _finish(files: RunDir, journal: Journal, result: RunResult) -> None:
    """The journal's last line and the verdict, then every file given to the invoking user. A
    write that fails here (a full disk) becomes the run's error unless it already has one."""
    journal.note("end", t=time.time(), error=str(result.error) if result.error else None)
    try:
        if result.verdict is not None:
            journal.write_json("verdict.json", result.verdict.to_json())
    except StorageError as exc:
        result.error = result.error or exc
    journal.close()
    if result.error is None and journal.failure is not None:
        result.error = journal.failure
    try:
        files.hand_over()
    except OSError as exc:
        result.error = result.error or StorageError(
            f"cannot give {result.run_dir} to its user: {exc.strerror or exc}"
        )
    files.close()


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
        lab.host(name).start_app(_app_config(scenario, name))  # returns once it listens
    observer.step("traffic started")
    result.t0 = t0 = time.time()
    journal.note("t0", t=t0)
    schedule = Schedule.of(list(scenario.timeline), t0)
    # Steps at 0s take effect before any client starts (a server blackholed before the first
    # SYN): applied and waited for here, not raced against the clients' connects.
    for pending in schedule.due(t0):
        _applied(pending.index, pending.step, lab, result, journal, observer)
    for name in clients:
        lab.host(name).start_app(_app_config(scenario, name))
    deadline = t0 + scenario.duration
    next_check = t0 + 1.0
    ended = "the duration"
    while time.time() < deadline:
        if cancel.is_set():
            raise CancelledError("cancelled")
        if time.time() >= next_check:
            lab.check_health()  # an engine restart kills the hosts: stop with exit 3, not a false verdict
            journal.check()  # a full disk: stop, and say which file could not be written
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


def _app_config(scenario: Scenario, name: str) -> str:
    """The agent's JSON config; a host running a program of the user's needs none (the backend
    has its program)."""
    return agent_config(scenario, name) if scenario.hosts[name].runs_agent else ""


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
        ctx = FaultContext(lab.host(step.host), lab.wire())
        detail = apply_step(step, ctx)
        record = FaultRecord(
            index, step.fault, step.host, t, detail, t_done=min(ctx.effect, default=time.time())
        )
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
