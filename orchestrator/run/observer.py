"""Where a run's progress goes: the run loop tells an observer, and never prints."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from orchestrator.run.records import AgentEvent, FaultRecord
from orchestrator.scenario.model import Scenario


class Observer(Protocol):
    def started(self, run_dir: Path, scenario: Scenario) -> None: ...  # captures are about to start
    def step(self, message: str) -> None: ...
    def event(self, event: AgentEvent) -> None: ...
    def fault(self, record: FaultRecord) -> None: ...
