"""Faults of the app: the process dies, stops, restarts or freezes; its kernel lives on."""

from __future__ import annotations

from orchestrator.faults.registry import FaultContext, fault
from orchestrator.scenario.steps import NOT_FATAL, Kill, Pause, Restart, Stop, Unpause


@fault("kill", Kill, "the app dies; its kernel closes its sockets (FIN, or RST if unread data was queued)")
def kill(step: Kill, ctx: FaultContext) -> str:
    ctx.host.signal_app(step.signal)
    verb = "sent" if step.signal in NOT_FATAL else "killed with"  # SIGSTOP freezes, it kills nothing
    return f"{step.host} app {verb} {step.signal}"


@fault("stop", Stop, "SIGTERM, then SIGKILL after the grace period; the kernel closes the sockets")
def stop(step: Stop, ctx: FaultContext) -> str:
    ctx.host.stop_app(step.grace)
    return f"{step.host} app stopped"


@fault(
    "restart", Restart, "a new process on the same kernel: old connections are gone, the port listens again"
)
def restart(step: Restart, ctx: FaultContext) -> str:
    ctx.host.restart_app()
    return f"{step.host} app restarted"


@fault("pause", Pause, "the app freezes; its kernel still ACKs until the receive window fills")
def pause(step: Pause, ctx: FaultContext) -> str:
    ctx.host.pause_app()
    return f"{step.host} app paused"


@fault("unpause", Unpause, "the app runs again and drains its receive queue")
def unpause(step: Unpause, ctx: FaultContext) -> str:
    ctx.host.unpause_app()
    return f"{step.host} app unpaused"
