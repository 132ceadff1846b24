"""Faults of the network: the host's cable, the wire's drops and delays, a rejecting middlebox."""

from __future__ import annotations

from orchestrator.faults.registry import FaultContext, fault
from orchestrator.scenario.steps import Blackhole, Disconnect, Heal, Loss, Netem, Reconnect, Reject


@fault(
    "disconnect",
    Disconnect,
    "cable pulled: the host's namespace loses its interface; the peer's packets vanish",
)
def disconnect(step: Disconnect, ctx: FaultContext) -> str:
    if step.network is None:
        ctx.host.disconnect()
        return f"{step.host} network cut"
    ctx.host.disconnect(step.network)
    return f"{step.host} cut from {step.network}"


@fault("reconnect", Reconnect, "cable back: same address and MAC; packets flow again")
def reconnect(step: Reconnect, ctx: FaultContext) -> str:
    if step.network is None:
        ctx.host.reconnect()
        return f"{step.host} network restored"
    ctx.host.reconnect(step.network)
    return f"{step.host} back on {step.network}"


@fault("blackhole", Blackhole, "IP packets dropped on the wire, silently, one way or both")
def blackhole(step: Blackhole, ctx: FaultContext) -> str:
    ctx.wire.blackhole(step.host, step.direction)
    return f"{step.host} blackholed ({step.direction})"


@fault("reject", Reject, "a middlebox answers each TCP segment to the host with an RST", net_admin=True)
def reject(step: Reject, ctx: FaultContext) -> str:
    ctx.host.reject()
    return f"{step.host} behind a middlebox that rejects with RST"


@fault("netem", Netem, "what reaches the host is delayed, lost, duplicated or reordered")
def netem(step: Netem, ctx: FaultContext) -> str:
    ctx.wire.netem(step.host, step.tc_args())
    return f"link into {step.host} impaired: netem {' '.join(step.tc_args())}"


@fault("heal", Heal, "blackhole, reject and netem removed")
def heal(step: Heal, ctx: FaultContext) -> str:
    ctx.wire.heal(step.host)
    ctx.host.unreject()
    return f"{step.host} healed"


@fault(
    "loss",
    Loss,
    "a share of the host's IP packets lost at random on the wire: fast retransmissions, SACK, RTOs",
)
def loss(step: Loss, ctx: FaultContext) -> str:
    ctx.wire.loss(step.host, step.percent, step.direction)
    return f"{step.host}: {step.percent * 100:g}% loss ({step.direction})"
