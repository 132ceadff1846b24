"""What each app saw, from its agent's events: the first thing that ended its connection."""

from __future__ import annotations

from dataclasses import dataclass, replace

from orchestrator.agent.wire import Event
from orchestrator.run.records import AgentEvent


@dataclass(frozen=True)
class AppOutcome:
    host: str
    sees: str  # "eof", "nothing", or an errno name
    t: float | None  # wall time of the event
    detail: str = ""
    # An endpoint ("IP:PORT") of the connection it is about, when the events say (a client's
    # own address, or a server's peer): with several connections, which one ended so.
    endpoint: str | None = None

    def label(self, t0: float | None) -> str:
        if self.t is None or t0 is None:
            return self.sees
        return f"{self.sees} at +{self.t - t0:.3f}s"


def app_outcome(host: str, events: list[AgentEvent]) -> AppOutcome:
    """The first thing that ended one of the host's connections."""
    found = connection_outcomes(host, events)
    return min(found.values(), key=lambda o: o.t or 0.0) if found else AppOutcome(host, "nothing", None)


def connection_outcomes(host: str, events: list[AgentEvent]) -> dict[str, AppOutcome]:
    """What ended each of a host's connections, by an endpoint of the connection ("" when the
    events do not say which)."""
    local_of: dict[object, str] = {}  # a pool's connection number -> its local endpoint
    out: dict[str, AppOutcome] = {}
    for event in events:
        if event.host != host:
            continue
        conn = event.extra.get("conn")
        if event.event == Event.CONNECTED and event.local:
            local_of[conn] = event.local
            continue
        if event.event == Event.EOF:
            outcome = AppOutcome(host, "eof", event.t, "read returned 0")
        elif event.event == Event.ERROR and event.errno:
            outcome = AppOutcome(
                host, event.errno, event.t, f"{event.op or '?'}: {event.extra.get('message', '')}"
            )
        else:
            continue
        endpoint = event.local or local_of.get(conn) or event.peer or ""
        if endpoint not in out:
            out[endpoint] = replace(outcome, endpoint=endpoint or None)
    return out


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
