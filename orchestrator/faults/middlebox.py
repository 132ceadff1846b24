"""Faults of a middlebox (a router host): it forgets its flows, its idle timeout changes, or it
forges a segment into a live connection."""

from __future__ import annotations

from orchestrator.backend.base import Host, Middlebox
from orchestrator.faults.registry import FaultContext, fault
from orchestrator.scenario.steps import ConntrackFlush, IdleTimeout, Inject


def _router(host: Host) -> Middlebox:
    if not isinstance(host, Middlebox):
        raise RuntimeError(f"{host.name} is not a router")
    return host


@fault(
    "conntrack_flush",
    ConntrackFlush,
    "the middlebox forgets every flow: the next packet of each is picked up, dropped or reset, "
    "as the router's conntrack.forgotten says",
)
def conntrack_flush(step: ConntrackFlush, ctx: FaultContext) -> str:
    _router(ctx.host).flush_conntrack()
    return f"{step.host} forgot every flow (conntrack -F)"


@fault(
    "idle_timeout",
    IdleTimeout,
    "the middlebox's idle timeout changes: an established flow idle longer than it is forgotten",
)
def idle_timeout(step: IdleTimeout, ctx: FaultContext) -> str:
    _router(ctx.host).set_idle_timeout(int(step.established))
    return f"{step.host} idle timeout {step.established:g}s"


@fault(
    "inject",
    Inject,
    "a forged segment from the path: an RST at the exact sequence number resets the connection, "
    "one merely in the window gets a challenge ACK (RFC 5961)",
)
def inject(step: Inject, ctx: FaultContext) -> str:
    sent = _router(ctx.host).inject(step.toward, step.flags, step.seq_offset)
    return f"{step.host} forged {step.flags} toward {step.toward} ({step.seq}): {sent}"
