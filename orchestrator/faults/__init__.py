"""Faults: what each timeline step does to a host, through the lab's controls (never docker directly)."""

from __future__ import annotations

from typing import Protocol

from orchestrator.scenario.model import Disconnect, Kill, Pause, Reconnect, Step, Unpause


class FaultTarget(Protocol):
    """The controls of one simulated machine that faults may use."""

    def disconnect(self) -> None: ...
    def reconnect(self) -> None: ...
    def kill_app(self, signal: str) -> None: ...
    def pause_app(self) -> None: ...
    def unpause_app(self) -> None: ...


# What each fault looks like from TCP's point of view; the README's table says the same.
EFFECTS: dict[str, str] = {
    "disconnect": "cable pulled: the host's namespace loses its interface; the peer's packets vanish",
    "reconnect": "cable back: same address and MAC; packets flow again",
    "kill": "the app dies; its kernel closes its sockets (FIN, or RST if unread data was queued)",
    "pause": "the app freezes; its kernel still ACKs until the receive window fills",
    "unpause": "the app runs again and drains its receive queue",
}


def apply_step(step: Step, target: FaultTarget) -> str:
    """Apply one step; return a short description for the timeline."""
    match step:
        case Disconnect():
            target.disconnect()
            return f"{step.host} network cut"
        case Reconnect():
            target.reconnect()
            return f"{step.host} network restored"
        case Kill():
            target.kill_app(step.signal)
            return f"{step.host} app killed with {step.signal}"
        case Pause():
            target.pause_app()
            return f"{step.host} app paused"
        case Unpause():
            target.unpause_app()
            return f"{step.host} app unpaused"
    raise AssertionError(f"unhandled fault {step!r}")
