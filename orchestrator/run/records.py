"""What a run records: the agents' events and the faults applied, both on the wall clock of the pcaps."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class AgentEvent:
    host: str
    # One of wire.Event's names; kept as text, so that a name this version does not know is kept too.
    event: str
    t: float
    errno: str | None = None
    local: str | None = None
    peer: str | None = None
    op: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def parse_event(line: str, host: str) -> AgentEvent | None:
    """One JSON line from an agent; anything else (a Python traceback, say) is not an event."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("event"), str):
        return None
    t = raw.get("t")
    return AgentEvent(
        host=host,
        event=raw["event"],
        t=float(t) if isinstance(t, int | float) else 0.0,
        errno=_str(raw.get("errno")),
        local=_str(raw.get("local")),
        peer=_str(raw.get("peer")),
        op=_str(raw.get("op")),
        extra=raw,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class FaultRecord:
    """A timeline step as it was really applied: asked for at `t`, in effect from `t_done` (a
    blackhole's rules or a power-off take a few hundred milliseconds to put in place)."""

    index: int
    fault: str
    host: str
    t: float
    detail: str = ""
    error: str | None = None
    t_done: float | None = None

    @property
    def in_effect(self) -> float:
        return self.t_done if self.t_done is not None else self.t

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class NotApplied:
    """A timeline step that never ran, and the true reason why."""

    index: int
    fault: str
    host: str
    reason: str
