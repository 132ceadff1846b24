"""The timeline's steps: one model per fault, told apart by the `fault` key."""

from __future__ import annotations

import re
import signal as signals
from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from orchestrator.scenario.base import StrictModel
from orchestrator.scenario.units import Duration, Percent


class StepBase(StrictModel):
    at: Duration = 0.0
    after: str | None = Field(default=None, description="HOST.EVENT of an agent, e.g. client.connected")
    host: str

    @field_validator("after")
    @classmethod
    def _check_after(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z][a-z0-9_-]*\.[a-z_]+$", value):
            raise ValueError(f"expected HOST.EVENT such as client.connected, got {value!r}")
        return value


class Disconnect(StepBase):
    """Pull the host's cable: its namespace loses the interface; the peer sees silence."""

    fault: Literal["disconnect"]


class Reconnect(StepBase):
    """Plug the cable back, with the same address and MAC."""

    fault: Literal["reconnect"]


class Kill(StepBase):
    """Signal the host's app; its kernel (which outlives the app) closes or resets its sockets."""

    fault: Literal["kill"]
    signal: str = "SIGKILL"

    @field_validator("signal")
    @classmethod
    def _check_signal(cls, value: str) -> str:
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name not in signals.Signals.__members__:
            raise ValueError(f"unknown signal {value!r}")
        return name


class Pause(StepBase):
    """Freeze the host's app (cgroup freezer); its kernel keeps answering."""

    fault: Literal["pause"]


class Unpause(StepBase):
    fault: Literal["unpause"]


class Stop(StepBase):
    """Stop the app as `docker stop` does: SIGTERM, then SIGKILL after the grace period."""

    fault: Literal["stop"]
    grace: Duration = 10.0


class Restart(StepBase):
    """Start the app again: a new process with the same program, on the same kernel."""

    fault: Literal["restart"]


class PowerOff(StepBase):
    """Power cut: the cable goes first so no FIN or RST escapes, then the kernel and its TCP state."""

    fault: Literal["power_off"]


class PowerOn(StepBase):
    """Boot again with the same address and MAC; a fresh kernel with no memory of old connections."""

    fault: Literal["power_on"]


class Blackhole(StepBase):
    """Silently drop the host's IP packets on the wire (between the hosts, so its own capture still
    shows what it sent): inbound (to it), outbound (from it) or both."""

    fault: Literal["blackhole"]
    direction: Literal["both", "inbound", "outbound"] = "both"


class Reject(StepBase):
    """A middlebox in front of the host answers every TCP segment to it with an RST."""

    fault: Literal["reject"]


class Heal(StepBase):
    """Undo the blackhole, reject and netem on this host."""

    fault: Literal["heal"]


class Netem(StepBase):
    """Impair the link into the host (the netem qdisc on the wire side of its veth): what reaches it
    is delayed, lost, duplicated or reordered. Needs a kernel with sch_netem."""

    fault: Literal["netem"]
    delay: Duration | None = None
    jitter: Duration | None = None
    loss: Percent | None = None
    duplicate: Percent | None = None
    reorder: Percent | None = None

    @model_validator(mode="after")
    def _check_netem(self) -> Netem:
        if all(v is None for v in (self.delay, self.loss, self.duplicate, self.reorder)):
            raise ValueError("netem needs at least one of delay, loss, duplicate, reorder")
        if (self.reorder is not None or self.jitter is not None) and not self.delay:
            raise ValueError("reorder and jitter work on delayed packets: give a delay too")
        return self

    def tc_args(self) -> list[str]:
        """The netem arguments of `tc qdisc ... netem`."""
        args: list[str] = []
        if self.delay:
            args += ["delay", f"{self.delay * 1000:g}ms"]
            if self.jitter:
                args.append(f"{self.jitter * 1000:g}ms")
        for name, value in (("loss", self.loss), ("duplicate", self.duplicate), ("reorder", self.reorder)):
            if value is not None:
                args += [name, f"{value * 100:g}%"]
        return args


Step = Annotated[
    Disconnect
    | Reconnect
    | Kill
    | Pause
    | Unpause
    | Stop
    | Restart
    | PowerOff
    | PowerOn
    | Blackhole
    | Reject
    | Heal
    | Netem,
    Field(discriminator="fault"),
]
STEP_TYPES: tuple[type[StepBase], ...] = get_args(get_args(Step)[0])
# Each step's `fault` name, from its model (for "did you mean" in the loader).
FAULT_NAMES: tuple[str, ...] = tuple(get_args(t.model_fields["fault"].annotation)[0] for t in STEP_TYPES)
