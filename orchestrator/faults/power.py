"""Faults of the machine: power off (the kernel and all its TCP state gone) and power on."""

from __future__ import annotations

from orchestrator.faults.registry import FaultContext, fault
from orchestrator.scenario.steps import PowerOff, PowerOn


@fault("power_off", PowerOff, "cable first, then the kernel: no FIN or RST escapes, all TCP state is lost")
def power_off(step: PowerOff, ctx: FaultContext) -> str:
    ctx.effect.append(ctx.host.power_off())
    return f"{step.host} power off"


@fault("power_on", PowerOn, "same address and MAC, fresh kernel: segments of old connections get an RST")
def power_on(step: PowerOn, ctx: FaultContext) -> str:
    # The host's cables go in only once its capture listens (backend): the fresh kernel's first
    # RST to a retransmission is in the new capture.
    ctx.effect.append(ctx.host.power_on())
    return f"{step.host} power on"
