"""What a router host does to the flows it forwards: NAT, and connection tracking with idle
timeouts and a behaviour for the packets of a flow it has forgotten.

Linux's own default (`forgotten: loose`) is surprising: a late packet of an expired flow is
picked up as a new flow (nf_conntrack_tcp_loose=1) and masquerade keeps the port, so nobody
notices. Cloud NATs and load balancers drop it (`drop`) or reset both ends (`reset-both`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from orchestrator.scenario.base import StrictModel, problems_at
from orchestrator.scenario.units import Count, Duration

Forgotten = Literal["loose", "drop", "reset-both"]
# The per-namespace conntrack TCP timeouts (net.netfilter.nf_conntrack_tcp_timeout_<state>),
# with Linux's defaults in seconds.
TCP_TIMEOUTS: dict[str, int] = {
    "syn_sent": 120,
    "syn_recv": 60,
    "established": 432000,
    "fin_wait": 120,
    "close_wait": 60,
    "last_ack": 30,
    "time_wait": 120,
    "close": 10,
    "max_retrans": 300,
    "unacknowledged": 300,
}
TIMEOUT_SYSCTL = "net.netfilter.nf_conntrack_tcp_timeout_"
LOOSE_SYSCTL = "net.netfilter.nf_conntrack_tcp_loose"
# What a router may also set directly (the TCP ones come from the host's own list).
ROUTER_SYSCTLS: dict[str, str] = {
    **{TIMEOUT_SYSCTL + state: f"{default} s" for state, default in TCP_TIMEOUTS.items()},
    LOOSE_SYSCTL: "1: a mid-stream packet of an unknown flow starts a new entry",
    "net.netfilter.nf_conntrack_tcp_be_liberal": "0: out-of-window packets are invalid",
}
TimeoutState = Literal[
    "syn_sent",
    "syn_recv",
    "established",
    "fin_wait",
    "close_wait",
    "last_ack",
    "time_wait",
    "close",
    "max_retrans",
    "unacknowledged",
]


class Conntrack(StrictModel):
    """The router's connection tracking: idle timeouts per TCP state (whole seconds, as the
    kernel takes them) and what a packet of a forgotten flow meets."""

    timeouts: dict[TimeoutState, Duration] = Field(default_factory=dict)
    forgotten: Forgotten = "loose"

    @field_validator("timeouts")
    @classmethod
    def _whole_seconds(cls, value: dict[TimeoutState, float]) -> dict[TimeoutState, float]:
        found = [
            (str(state), f"{state}: conntrack timeouts are whole seconds, at least 1s", seconds)
            for state, seconds in value.items()
            if seconds < 1 or seconds != int(seconds)
        ]
        if found:  # each at its own key, all at once
            raise problems_at("timeouts", found)
        return value

    def sysctls(self) -> dict[str, int]:
        """The per-namespace sysctls that give this behaviour (set when the router is created)."""
        out = {TIMEOUT_SYSCTL + state: int(seconds) for state, seconds in self.timeouts.items()}
        if self.forgotten != "loose":
            # A mid-stream packet of an unknown flow is then invalid, and the ruleset drops it.
            out[LOOSE_SYSCTL] = 0
        return out


class Publish(StrictModel):
    """DNAT: connections to the router's `port` on `network` go to `to` (HOST:PORT)."""

    port: Annotated[int, Field(ge=1, le=65535)]
    to: str
    network: str | None = Field(default=None, description="where the port is published (default: all)")

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT such as server:7000, got {value!r}")
        return value

    @property
    def target(self) -> tuple[str, int]:
        host, _, port = self.to.rpartition(":")
        return host, int(port)


class Nat(StrictModel):
    """Source NAT of what leaves through `masquerade` (the router's address there), and DNAT of
    published ports. `random`: masquerade picks a random source port (a new one for a flow
    that comes back after being forgotten, so the server's kernel answers it with an RST)."""

    masquerade: str | None = Field(default=None, description="the network whose side is the outside")
    random: bool = False
    publish: list[Publish] = Field(default_factory=list)


class MiddleboxExpect(StrictModel):
    """What a router did to the connection, from its captures and its conntrack log."""

    died: Count | None = Field(default=None, description="segments that came in and never went out")
    forged: Count | None = Field(default=None, description="segments it sent into the connection itself")
    forgot: bool | None = Field(
        default=None, description="conntrack dropped the flow while it was established"
    )
    picked_up: bool | None = Field(default=None, description="then a new entry for the same flow and port")
