"""What each app saw, from its agent's events: the first thing that ended its connection."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.agent.wire import Event
from orchestrator.run.records import AgentEvent


@dataclass(frozen=True)
class AppOutcome:
    host: str
    sees: str  # "eof", "nothing", or an errno name
    t: float | None  # wall time of the event
    detail: str = ""

    def label(self, t0: float | None) -> str:
        if self.t is None or t0 is None:
            return self.sees
        return f"{self.sees} at +{self.t - t0:.3f}s"


def app_outcome(host: str, events: list[AgentEvent]) -> AppOutcome:
    for event in events:
        if event.host != host:
            continue
        if event.event == Event.EOF:
            return AppOutcome(host, "eof", event.t, "read returned 0")
        if event.event == Event.ERROR and event.errno:
            return AppOutcome(
                host, event.errno, event.t, f"{event.op or '?'}: {event.extra.get('message', '')}"
            )
    return AppOutcome(host, "nothing", None)


def connected_endpoint(host: str, events: list[AgentEvent]) -> str | None:
    """The client's own IP:PORT, which names its connection in the captures."""
    for event in events:
        if event.host == host and event.event == Event.CONNECTED and event.local:
            return event.local
    return None


def connected_ends(host: str, events: list[AgentEvent]) -> tuple[str, str] | None:
    """The client's (local, peer) IP:PORT as its own kernel names the connection."""
    for event in events:
        if event.host == host and event.event == Event.CONNECTED and event.local and event.peer:
            return event.local, event.peer
    return None
