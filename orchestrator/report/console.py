"""What the terminal shows: progress lines as the run goes, then the verdict with its evidence."""

from __future__ import annotations

import time

from rich.console import Console
from rich.text import Text

from orchestrator.records import AgentEvent, FaultRecord
from orchestrator.verdict.judge import Verdict

QUIET_EVENTS = {"sent", "received", "start", "socket_options"}


class ConsoleObserver:
    """Receives progress from the run loop; the loop itself never prints."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self.console, self.verbose = console, verbose
        self.t0 = time.time()
        self.counts: dict[tuple[str, str], int] = {}

    def step(self, message: str) -> None:
        if message == "traffic started":
            self.t0 = time.time()
        self._line("·", message, "dim")

    def event(self, event: AgentEvent) -> None:
        key = (event.host, event.event)
        self.counts[key] = self.counts.get(key, 0) + 1
        if event.event in QUIET_EVENTS and not self.verbose:
            return
        detail = " ".join(f"{k}={v}" for k, v in (("errno", event.errno), ("peer", event.peer)) if v)
        style = "red" if event.event == "error" else "cyan"
        self._line("▸", f"{event.host}: {event.event} {detail}".rstrip(), style, event.t)

    def fault(self, record: FaultRecord) -> None:
        if record.error:
            self._line(
                "✗", f"fault {record.fault} on {record.host} failed: {record.error}", "bold red", record.t
            )
        else:
            self._line("⚡", record.detail, "bold yellow", record.t)

    def _line(self, mark: str, message: str, style: str, at: float | None = None) -> None:
        rel = (at if at is not None else time.time()) - self.t0
        self.console.print(Text(f"{rel:8.3f}s {mark} {message}", style=style))


class QuietObserver:
    """For one-line-per-scenario output: progress is dropped."""

    def step(self, message: str) -> None:
        pass

    def event(self, event: AgentEvent) -> None:
        pass

    def fault(self, record: FaultRecord) -> None:
        pass


def print_verdict(console: Console, verdict: Verdict) -> None:
    """One line per expectation, its evidence indented below: readable at any terminal width."""
    console.print(Text(f"verdict: {verdict.scenario}", style="bold"))
    for check in verdict.checks:
        mark = Text(" PASS ", style="bold green") if check.passed else Text(" FAIL ", style="bold red")
        line = Text.assemble(mark, (f"{check.name:<24}", "bold"), f" {check.observed}")
        if not check.passed or check.expected != check.observed:
            line.append(f"  (expected {check.expected})", style="dim")
        console.print(line)
        for item in check.evidence:
            console.print(Text(f"        {item}", style="dim"))
    for note in verdict.notes:
        console.print(Text(f"  note: {note}", style="italic"))
    overall = Text("PASS", style="bold green") if verdict.passed else Text("FAIL", style="bold red")
    console.print(
        Text.assemble("result: ", overall, f"  ({verdict.passed_count}/{len(verdict.checks)} expectations)")
    )
