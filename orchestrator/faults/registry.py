"""The fault registry: each fault is registered once, with its step model, what it does to TCP,
and the function that applies it through the backend's controls (never the engine directly)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from orchestrator.backend.base import Host, Wire
from orchestrator.scenario.steps import StepBase


@dataclass(frozen=True)
class FaultContext:
    """What a fault may touch: the controls of the step's host, and the wire between hosts."""

    host: Host
    wire: Wire
    # When the fault took effect, if it knows better than "when its call returned" (a power
    # off: the cut, before the containers go). Set once, by the fault.
    effect: list[float] = field(default_factory=list)


S = TypeVar("S", bound=StepBase)
Apply = Callable[[Any, FaultContext], str]


@dataclass(frozen=True)
class Fault:
    name: str
    step: type[StepBase]
    effect: str  # what TCP sees; the README's fault table says the same
    apply: Apply  # does it; returns a short description for the timeline
    net_admin: bool = False  # changes the host's own firewall: that host needs NET_ADMIN


FAULTS: dict[str, Fault] = {}


def fault(
    name: str, step: type[S], effect: str, *, net_admin: bool = False
) -> Callable[[Callable[[S, FaultContext], str]], Callable[[S, FaultContext], str]]:
    """Register the decorated function as the way to apply `step`."""

    def register(apply: Callable[[S, FaultContext], str]) -> Callable[[S, FaultContext], str]:
        if name in FAULTS:
            raise ValueError(f"fault {name!r} is registered twice")
        FAULTS[name] = Fault(name, step, effect, apply, net_admin)
        return apply

    return register


def apply_step(step: StepBase, ctx: FaultContext) -> str:
    """Apply one timeline step; return a short description for the timeline."""
    found = next((f for f in FAULTS.values() if isinstance(step, f.step)), None)
    if found is None:
        raise AssertionError(f"no fault registered for {type(step).__name__}")
    return found.apply(step, ctx)


def needs_net_admin(steps: list[StepBase]) -> frozenset[str]:
    """The hosts a timeline's faults need NET_ADMIN on (and only those)."""
    admin = {f.name for f in FAULTS.values() if f.net_admin}
    return frozenset(s.host for s in steps if getattr(s, "fault", None) in admin)
