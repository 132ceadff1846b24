"""What the terminal shows: progress as the run goes, then the verdict with its evidence.

On a terminal, a live panel (rich) holds the current step, the time left, the timeline and the
packets captured per side, with the events printed above it as they come. Without one (CI, a
pipe), the same events as plain lines, and the packet counts once the captures close.
"""

from __future__ import annotations

import atexit
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from orchestrator.report.progress import CaptureCounter, RunState, describe_counts
from orchestrator.report.terminal import printable
from orchestrator.run.records import AgentEvent, FaultRecord
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.steps import Step
from orchestrator.verdict.judge import Verdict

QUIET_EVENTS = {"sent", "received", "start", "socket_options"}
# After this step nothing more is captured: the panel goes, the counts are final.
LAST_LIVE_STEP = "closing captures"


class ConsoleObserver:
    """Receives progress from the run loop; the loop itself never prints."""

    active: ConsoleObserver | None = None  # the one whose panel is on the screen

    def __init__(self, console: Console, verbose: bool = False, live: bool | None = None) -> None:
        self.console, self.verbose = console, verbose
        self.use_live = console.is_terminal if live is None else live
        self.t0 = time.time()
        self.counts: dict[tuple[str, str], int] = {}
        self.state: RunState | None = None
        self._live: Live | None = None

    def started(self, run_dir: Path, scenario: Scenario) -> None:
        steps = [describe_step(s) for s in scenario.timeline]
        self.state = RunState(scenario.name, scenario.duration, steps, CaptureCounter(run_dir))
        if self.use_live:
            _stop_active()  # a run that ended in an error never reached its last live step
            ConsoleObserver.active = self
            self._live = Live(
                get_renderable=self.state.panel, console=self.console, refresh_per_second=4, transient=True
            )
            self._live.start()

    def step(self, message: str) -> None:
        if message == "traffic started":
            self.t0 = time.time()
            if self.state is not None:
                self.state.t0 = self.t0
        if self.state is not None:
            self.state.current = message
        self._line("·", message, "dim")
        if message == LAST_LIVE_STEP:
            self.stop()

    def event(self, event: AgentEvent) -> None:
        key = (event.host, event.event)
        self.counts[key] = self.counts.get(key, 0) + 1
        if event.event in QUIET_EVENTS and not self.verbose:
            return
        detail = " ".join(f"{k}={v}" for k, v in (("errno", event.errno), ("peer", event.peer)) if v)
        style = "red" if event.event == "error" else "cyan"
        self._line("▸", f"{event.host}: {event.event} {detail}".rstrip(), style, event.t)

    def fault(self, record: FaultRecord) -> None:
        if self.state is not None:
            self.state.applied.append(record.fault)
        # Shown when it took effect (a blackhole takes a few hundred ms to install), the request beside.
        asked = f" (asked at {record.t - self.t0:.3f}s)" if record.in_effect - record.t >= 0.001 else ""
        if record.error:
            message = f"fault {record.fault} on {record.host} failed: {record.error}{asked}"
            self._line("✗", message, "bold red", record.in_effect)
        else:
            self._line("⚡", f"{record.detail}{asked}", "bold yellow", record.in_effect)

    def stop(self) -> None:
        """The panel goes; the packet counts stay, as one line."""
        if self._live is not None:
            self._live.stop()
            self._live = None
            ConsoleObserver.active = None
        if self.state is not None:
            self._line("·", "captured: " + describe_counts(self.state.counter.counts()), "dim")
            self.state = None

    def _line(self, mark: str, message: str, style: str, at: float | None = None) -> None:
        rel = (at if at is not None else time.time()) - self.t0
        # The message carries what an agent or the engine said: no escape sequence gets through.
        self.console.print(Text(f"{rel:8.3f}s {mark} {printable(message)}", style=style))


def _stop_active() -> None:
    if ConsoleObserver.active is not None:
        ConsoleObserver.active.stop()


atexit.register(_stop_active)  # an interrupted run: give the terminal its cursor back


def describe_step(step: Step) -> str:
    when = f"{step.at:g} s after {step.after}" if step.after else f"at +{step.at:g} s"
    return f"{step.fault} on {step.host} {when}"


class QuietObserver:
    """For one-line-per-scenario output: progress is dropped."""

    def started(self, run_dir: Path, scenario: Scenario) -> None:
        pass

    def step(self, message: str) -> None:
        pass

    def event(self, event: AgentEvent) -> None:
        pass

    def fault(self, record: FaultRecord) -> None:
        pass


def print_verdict(console: Console, verdict: Verdict) -> None:
    """One line per expectation, its evidence indented below: readable at any terminal width."""
    console.print(Text(f"verdict: {printable(verdict.scenario)}", style="bold"))
    for check in verdict.checks:
        mark = Text(" PASS ", style="bold green") if check.passed else Text(" FAIL ", style="bold red")
        line = Text.assemble(mark, (f"{check.name:<24}", "bold"), f" {printable(check.observed)}")
        if not check.passed or check.expected != check.observed:
            line.append(f"  (expected {printable(check.expected)})", style="dim")
        console.print(line)
        for item in check.evidence:
            console.print(Text(f"        {printable(item)}", style="dim"))
    for note in verdict.notes:
        console.print(Text(f"  note: {printable(note)}", style="italic"))
    overall = Text("PASS", style="bold green") if verdict.passed else Text("FAIL", style="bold red")
    console.print(
        Text.assemble("result: ", overall, f"  ({verdict.passed_count}/{len(verdict.checks)} expectations)")
    )
