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
    """Pull the host's cable: its namespace loses the interface; the peer sees silence. On a host
    with several networks, `network` names the one cable (default: all of them)."""

    fault: Literal["disconnect"]
    network: str | None = None


class Reconnect(StepBase):
    """Plug the cable back, with the same address and MAC."""

    fault: Literal["reconnect"]
    network: str | None = None


# Signals whose default action does not end the process.
NOT_FATAL = frozenset(
    {"SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGCONT", "SIGCHLD", "SIGURG", "SIGWINCH"}
)


def signal_name(value: str) -> str | None:
    """A signal as the engine names it (`term`, `SIGTERM` -> SIGTERM), None if there is none such."""
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    return name if name in signals.Signals.__members__ else None


class Kill(StepBase):
    """Signal the host's app; its kernel (which outlives the app) closes or resets its sockets."""

    fault: Literal["kill"]
    signal: str = "SIGKILL"

    @field_validator("signal")
    @classmethod
    def _check_signal(cls, value: str) -> str:
        name = signal_name(value)
        if name is None:
            raise ValueError(f"unknown signal {value!r}")
        return name


class Pause(StepBase):
    """Freeze the host's app (cgroup freezer); its kernel keeps answering."""

    fault: Literal["pause"]


class Unpause(StepBase):
    fault: Literal["unpause"]


class Stop(StepBase):
    """Stop the app as `docker stop` does: SIGTERM (or the Compose service's stop_signal), then
    SIGKILL after the grace period."""

    fault: Literal["stop"]
    # None: the Compose service's stop_grace_period, else docker stop's 10 s.
    grace: Duration | None = None

    @field_validator("grace")
    @classmethod
    def _whole_grace(cls, value: float | None) -> float | None:
        # The engine's stop takes whole seconds: 500ms would round to 0, a SIGKILL right after
        # the SIGTERM, and 1500ms to 2s.
        if value is not None and value != int(value):
            raise ValueError(f"{value:g}s: docker stop's grace is whole seconds, such as 1s (or 0s)")
        return value


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


class Loss(StepBase):
    """Lose a share of the host's IP packets at random on the wire (nftables `numgen random` on
    the run's bridge, so both captures stay true): what it sends (outbound), what it is sent
    (inbound), or both. Needs no netem."""

    fault: Literal["loss"]
    percent: Percent
    direction: Literal["both", "inbound", "outbound"] = "both"

    @field_validator("percent")
    @classmethod
    def _check_percent(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError("a loss between 0% and 100% (both excluded)")
        return value


class ConntrackFlush(StepBase):
    """The router forgets every flow at once (`conntrack -F`), as a middlebox that reboots."""

    fault: Literal["conntrack_flush"]


class IdleTimeout(StepBase):
    """The router's idle timeout for established flows becomes `established`, from now on."""

    fault: Literal["idle_timeout"]
    established: Duration

    @field_validator("established")
    @classmethod
    def _whole(cls, value: float) -> float:
        if value < 1 or value != int(value):
            raise ValueError("conntrack timeouts are whole seconds, at least 1s")
        return value


class Inject(StepBase):
    """The router forges a segment into the live connection, toward one of its ends: `seq: exact`
    is the sequence number that end expects next (an RST there resets the connection),
    `in-window` is 1000 past it (RFC 5961: an RST there gets a challenge ACK instead); `offset`
    gives any other distance."""

    fault: Literal["inject"]
    toward: str
    flags: Literal["R", "RA", "A", "F", "FA", "S"] = "R"
    seq: Literal["exact", "in-window"] = "exact"
    offset: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)

    @property
    def seq_offset(self) -> int:
        if self.offset is not None:
            return self.offset
        return 0 if self.seq == "exact" else IN_WINDOW


IN_WINDOW = 1000  # bytes past the next expected sequence number: inside any real window

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
    | Netem
    | Loss
    | ConntrackFlush
    | IdleTimeout
    | Inject,
    Field(discriminator="fault"),
]
STEP_TYPES: tuple[type[StepBase], ...] = get_args(get_args(Step)[0])
# Each step's `fault` name, from its model (for "did you mean" in the loader).
FAULT_NAMES: tuple[str, ...] = tuple(get_args(t.model_fields["fault"].annotation)[0] for t in STEP_TYPES)
