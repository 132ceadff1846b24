"""What a user's program did, for the verdict: how it ended (its exit code and time, from the
engine), what it printed (`<host>.app.log`), and what its syscall trace says it saw (the events
read from `<host>.syscalls.txt`); and the expectations on them: `exits`, `within`, `output`.
`sees` is judged as for the agent, from the same kind of events (programs/strace.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.run.records import AgentEvent, FaultRecord
from orchestrator.scenario.expect import AppExpect
from orchestrator.scenario.model import Scenario
from orchestrator.verdict.expectations import Check, at

OUTPUT_TAIL = 20


@dataclass(frozen=True)
class ProgramOutcome:
    host: str
    exit_code: int | None  # None: still running when the run ended (or powered off with its machine)
    exit_t: float | None
    signal: str | None
    errors: list[str] = field(default_factory=list)  # "read ETIMEDOUT at +13.402s (client.syscalls.txt:88)"
    output_tail: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)


def program_outcomes(
    scenario: Scenario, events: list[AgentEvent], run_dir: Path, t0: float | None
) -> dict[str, ProgramOutcome]:
    return {
        name: program_outcome(name, events, run_dir, t0)
        for name, host in scenario.apps().items()
        if not host.runs_agent
    }


def program_outcome(host: str, events: list[AgentEvent], run_dir: Path, t0: float | None) -> ProgramOutcome:
    mine = [e for e in events if e.host == host]
    exits = [e for e in mine if e.event == "exit"]
    last = exits[-1] if exits else None
    code = last.extra.get("code") if last is not None else None
    errors = [
        f"{e.op or e.extra.get('syscall', '?')} {e.errno} at {at(e.t, t0)} ({e.extra.get('trace', '')})"
        for e in mine
        if e.event == "error" and e.errno
    ]
    log = run_dir / f"{host}.app.log"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    traces = sorted(p.name for p in run_dir.glob(f"{host}.syscalls*.txt"))
    return ProgramOutcome(
        host,
        code if isinstance(code, int) else None,
        last.t if last is not None else None,
        str(last.extra["signal"]) if last is not None and "signal" in last.extra else None,
        errors,
        lines[-OUTPUT_TAIL:],
        traces,
    )


def program_checks(
    scenario: Scenario,
    outcomes: dict[str, ProgramOutcome],
    faults: list[FaultRecord],
    run_dir: Path,
    t0: float | None,
) -> list[Check]:
    out: list[Check] = []
    # From when the first fault was applied: a killed program can exit before the engine's call returns.
    applied = [f.t for f in faults if f.error is None]
    since, since_what = (min(applied), "the first fault") if applied else (t0, "traffic started")
    for name, want in scenario.expect.apps.items():
        seen = outcomes.get(name)
        if seen is None:
            continue
        if want.exits is not None:
            out.append(check_exits(name, want, seen, t0))
        if want.within is not None and want.exits is not None:
            out.append(check_within(name, want.within, seen, since, since_what))
        if want.output is not None:
            out.append(check_output(name, want, run_dir))
    return out


def check_exits(host: str, want: AppExpect, seen: ProgramOutcome, t0: float | None) -> Check:
    expected = "a nonzero code" if want.exits == "nonzero" else f"code {want.exits}"
    if seen.exit_code is None:
        return Check(f"apps.{host}.exits", False, expected, "did not exit")
    ok = seen.exit_code != 0 if want.exits == "nonzero" else seen.exit_code == want.exits
    shown = f"code {seen.exit_code}" + (f" ({seen.signal})" if seen.signal else "")
    if seen.exit_t is not None:
        shown += f" at {at(seen.exit_t, t0)}"
    return Check(f"apps.{host}.exits", ok, expected, shown, [f"{host}.events.jsonl: exit", *seen.errors[:3]])


def check_within(host: str, within: float, seen: ProgramOutcome, since: float | None, what: str) -> Check:
    name, expected = f"apps.{host}.within", f"exit within {within:g}s of {what}"
    if seen.exit_t is None or since is None:
        return Check(name, False, expected, "did not exit")
    took = seen.exit_t - since
    return Check(name, took <= within, expected, f"exited {took:.3f}s after {what}")


def check_output(host: str, want: AppExpect, run_dir: Path) -> Check:
    assert want.output is not None
    log = run_dir / f"{host}.app.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    # Each app.log line is "<timestamp> <stream>: <text>": the pattern is matched against the text.
    lines = [line.split(": ", 1)[1] if ": " in line else line for line in text.splitlines()]
    pattern = re.compile(want.output)
    found = next((line for line in lines if pattern.search(line)), None)
    return Check(
        f"apps.{host}.output",
        found is not None,
        f"output matching /{want.output}/",
        repr(found[:120]) if found is not None else f"no line matches ({len(lines)} lines)",
        [f"{host}.app.log"],
    )
