"""Faults: what each timeline step does to a host, through the lab's controls (never docker directly)."""

from __future__ import annotations

from typing import Protocol

from orchestrator.scenario.steps import (
    Blackhole,
    Disconnect,
    Heal,
    Kill,
    Netem,
    Pause,
    PowerOff,
    PowerOn,
    Reconnect,
    Reject,
    Restart,
    Step,
    Stop,
    Unpause,
)


class FaultTarget(Protocol):
    """The controls of one simulated machine that faults may use."""

    def disconnect(self) -> None: ...
    def reconnect(self) -> None: ...
    def kill_app(self, signal: str) -> None: ...
    def pause_app(self) -> None: ...
    def unpause_app(self) -> None: ...
    def stop_app(self, grace_s: float) -> None: ...
    def restart_app(self) -> None: ...
    def power_off(self) -> None: ...
    def power_on(self) -> None: ...
    def blackhole(self, direction: str) -> None: ...
    def reject(self) -> None: ...
    def heal(self) -> None: ...
    def netem(self, args: list[str]) -> None: ...


# What each fault looks like from TCP's point of view; the README's table says the same.
EFFECTS: dict[str, str] = {
    "disconnect": "cable pulled: the host's namespace loses its interface; the peer's packets vanish",
    "reconnect": "cable back: same address and MAC; packets flow again",
    "kill": "the app dies; its kernel closes its sockets (FIN, or RST if unread data was queued)",
    "pause": "the app freezes; its kernel still ACKs until the receive window fills",
    "unpause": "the app runs again and drains its receive queue",
    "stop": "SIGTERM, then SIGKILL after the grace period; the kernel closes the sockets",
    "restart": "a new process on the same kernel: old connections are gone, the port listens again",
    "power_off": "cable first, then the kernel: no FIN or RST escapes, all TCP state is lost",
    "power_on": "same address and MAC, fresh kernel: segments of old connections get an RST",
    "blackhole": "IP packets dropped on the wire, silently, one way or both",
    "reject": "a middlebox answers each TCP segment to the host with an RST",
    "heal": "blackhole, reject and netem removed",
    "netem": "what reaches the host is delayed, lost, duplicated or reordered",
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
        case Stop():
            target.stop_app(step.grace)
            return f"{step.host} app stopped"
        case Restart():
            target.restart_app()
            return f"{step.host} app restarted"
        case PowerOff():
            target.power_off()
            return f"{step.host} power off"
        case PowerOn():
            target.power_on()
            return f"{step.host} power on"
        case Blackhole():
            target.blackhole(step.direction)
            return f"{step.host} blackholed ({step.direction})"
        case Reject():
            target.reject()
            return f"{step.host} behind a middlebox that rejects with RST"
        case Heal():
            target.heal()
            return f"{step.host} healed"
        case Netem():
            target.netem(step.tc_args())
            return f"link into {step.host} impaired: netem {' '.join(step.tc_args())}"
    raise AssertionError(f"unhandled fault {step!r}")
