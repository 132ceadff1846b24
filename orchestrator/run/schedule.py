"""When each timeline step is due: at a time after traffic starts, or after an agent's event. Pure logic."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.run.records import AgentEvent
from orchestrator.scenario.steps import Step


@dataclass
class Pending:
    index: int
    step: Step
    due: float | None  # wall time; None while its event has not happened


@dataclass
class Schedule:
    t0: float
    pending: list[Pending] = field(default_factory=list)

    @classmethod
    def of(cls, steps: list[Step], t0: float) -> Schedule:
        return cls(t0, [Pending(i, s, None if s.after else t0 + s.at) for i, s in enumerate(steps)])

    def observe(self, event: AgentEvent) -> None:
        """The first matching event arms a step waiting for it."""
        for p in self.pending:
            if p.due is None and p.step.after == f"{event.host}.{event.event}":
                p.due = event.t + p.step.at

    def due(self, now: float) -> list[Pending]:
        ready = sorted(
            (p for p in self.pending if p.due is not None and p.due <= now), key=lambda p: (p.due, p.index)
        )
        for p in ready:
            self.pending.remove(p)
        return ready

    def next_due(self) -> float | None:
        times = [p.due for p in self.pending if p.due is not None]
        return min(times) if times else None

    def has_timed(self) -> bool:
        """Steps that will fire by the clock alone (armed or plain `at`)."""
        return any(p.due is not None for p in self.pending)
