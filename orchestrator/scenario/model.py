"""The scenario, as typed models. Cross-checks that need the whole file live in `Scenario`."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from orchestrator.scenario.addresses import Address6Text, AddressText, Subnet6Text, SubnetText
from orchestrator.scenario.base import StrictModel, problems_at
from orchestrator.scenario.expect import Expect
from orchestrator.scenario.expect import Side as Side  # noqa: PLC0414 - re-exported
from orchestrator.scenario.matrix import Matrix
from orchestrator.scenario.middlebox import ROUTER_SYSCTLS, Conntrack, Nat
from orchestrator.scenario.names import check_image, check_text
from orchestrator.scenario.program import Program, check_service_program
from orchestrator.scenario.socket_expect import SocketState as SocketState  # noqa: PLC0414 - re-exported
from orchestrator.scenario.sockopts import SocketOptions as SocketOptions  # noqa: PLC0414 - re-exported
from orchestrator.scenario.steps import Step
from orchestrator.scenario.units import MIB, Duration, Memory

MAX_DURATION_S = 3600.0
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

# Per-network-namespace TCP sysctls (the only ones `docker run --sysctl` can give one host).
# The comment is the kernel default a new namespace starts from.
SUPPORTED_SYSCTLS: dict[str, str] = {
    "net.ipv4.tcp_keepalive_time": "7200 s before the first keepalive probe",
    "net.ipv4.tcp_keepalive_intvl": "75 s between keepalive probes",
    "net.ipv4.tcp_keepalive_probes": "9 unanswered probes before the abort",
    "net.ipv4.tcp_retries1": "3: when to ask the route layer for advice",
    "net.ipv4.tcp_retries2": "15: RTO abort after 924.6 s of backoff",
    "net.ipv4.tcp_syn_retries": "6: connect() gives up after about 127 s",
    "net.ipv4.tcp_synack_retries": "5 SYN-ACK retransmissions",
    "net.ipv4.tcp_orphan_retries": "0 (means 8) for orphaned sockets",
    "net.ipv4.tcp_fin_timeout": "60 s in FIN_WAIT2 for orphans",
    "net.ipv4.tcp_early_retrans": "3: tail-loss probes on",
    "net.ipv4.tcp_sack": "1",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_window_scaling": "1",
    "net.ipv4.tcp_syn_linear_timeouts": "4 linear SYN retries (newer kernels)",
    "net.ipv4.tcp_rto_max_ms": "120000: the RTO's ceiling, 1000 at least (kernels from 6.15)",
    "net.ipv4.tcp_thin_linear_timeouts": "0: 1 keeps a thin stream's first 6 RTOs level, then doubles",
}
# Sysctls whose range is narrower than the kernel's integers: name -> (least, most).
SYSCTL_RANGES = {
    "net.ipv4.tcp_rto_max_ms": (1000, 120_000),
    "net.ipv4.tcp_thin_linear_timeouts": (0, 1),
    "net.ipv4.tcp_early_retrans": (0, 4),
}


def _sysctl_problem(name: str, number: object, allowed: dict[str, str]) -> str | None:
    """What is wrong with one sysctl entry, or None."""
    if name not in allowed:
        return (
            f"unsupported sysctl {name}{_meant(name, allowed)}; per-namespace sysctls here are: "
            + ", ".join(s.removeprefix("net.ipv4.") for s in allowed)
        )
    whole = isinstance(number, int) or (isinstance(number, float) and number.is_integer())
    digits = isinstance(number, str) and number.strip().lstrip("-").isdigit()
    if isinstance(number, bool) or not (whole or digits):
        # "2s" is a natural slip for a time in seconds, and pydantic's own words ("unable to
        # parse string as an integer") do not say why.
        shown = str(number).lower() if isinstance(number, bool) else repr(number)
        return (
            f"{shown}: a sysctl is the number /proc/sys takes, in its own unit and without one "
            "(tcp_keepalive_time: 2 for 2 s, tcp_rto_max_ms: 1000 for 1 s)"
        )
    n = int(number)  # type: ignore[call-overload]
    low, high = SYSCTL_RANGES.get(name, (0, 2**31 - 1))
    return None if low <= n <= high else f"{n} is not a value the kernel takes ({low} to {high})"


def _meant(name: str, allowed: Iterable[str]) -> str:
    """ "did you mean" for a misspelt sysctl close to one tcpscen sets."""
    hint = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.8)
    return f" (did you mean {hint[0]}?)" if hint else ""


class ServerAgent(StrictModel):
    mode: Literal["echo", "sink", "hold", "close-first"] = "echo"
    port: Annotated[int, Field(ge=1, le=65535)] = 7000
    close_after: Duration | None = None
    socket: SocketOptions = SocketOptions()


class ClientAgent(StrictModel):
    # pool: one request and its reply, then idle and unwatched; reused (written to, never read)
    # from send_after on, every `every`, `count` times: the writes meet what became of the peer.
    mode: Literal["idle", "send", "close", "pool"] = "send"
    connect: str = Field(description="HOST:PORT of a server host in this scenario")
    every: Duration = 0.2
    size: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    send_after: Duration = 0.0
    count: Annotated[int, Field(ge=1)] | None = None
    close_after: Duration | None = None
    socket: SocketOptions = SocketOptions()
    # A pool: this many connections to the same server, opened in turn, each run as above.
    connections: Annotated[int, Field(ge=1, le=1024)] = 1

    @field_validator("connect")
    @classmethod
    def _check_connect(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT such as server:7000, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_mode(self) -> ClientAgent:
        if self.mode == "close" and self.close_after is None:
            raise ValueError("mode close needs close_after (when to close, after connecting)")
        if self.mode == "send" and self.every <= 0 and self.count is None:
            raise ValueError("mode send with every: 0 needs a count")
        return self

    @property
    def target(self) -> tuple[str, int]:
        host, _, port = self.connect.rpartition(":")
        return host, int(port)


class Limits(StrictModel):
    """What the host's app may use: a runaway program (a fork bomb, a leak) stops at these, and
    the run, its clean-up and the machine go on."""

    memory: Memory = 512 * MIB  # also the limit with swap: none beyond it
    pids: Annotated[int, Field(ge=16, le=32768)] = 256  # processes and threads


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _addresses(value: object) -> object:
    """A network's address for a host: one, or a list (dual stack: an IPv4 and an IPv6 one)."""
    return [value] if isinstance(value, str | int) else value


class HostBase(StrictModel):
    image: str = "tcpscen/agent"
    # The host's address on the scenario's one network; with several networks (`networks:`),
    # its first address there, filled in by the loader: every tool that wants "the host's
    # address" (the verdict, the reports) gets the one its connections use.
    address: AddressText
    address6: Address6Text | None = Field(default=None, description="dual stack: also this")
    networks: dict[str, Annotated[list[AddressText], Field(min_length=1, max_length=2)]] = Field(
        default_factory=dict
    )
    mac: str | None = None
    sysctls: dict[str, int] = Field(default_factory=dict)
    # Instead of the built-in agent: a program of the user's (program.py), or a service of the
    # scenario's Compose file (`service`, with `program` then saying only how tcpscen treats it).
    program: Program | None = None
    service: str | None = None
    limits: Limits = Limits()

    @model_validator(mode="before")
    @classmethod
    def _primary_address(cls, data: object) -> object:
        if not isinstance(data, dict) or "networks" not in data:
            return data
        if "address" in data or "address6" in data:
            raise ValueError("give either address (one network) or networks (several), not both")
        networks = data["networks"]
        if isinstance(networks, dict) and networks:
            first = _addresses(next(iter(networks.values())))
            data = {**data, "networks": {k: _addresses(v) for k, v in networks.items()}}
            if isinstance(first, list) and first:
                data["address"] = first[0]
        return data

    @model_validator(mode="after")
    def _check_families(self) -> HostBase:
        for name, addresses in self.networks.items():
            if len(addresses) == 2 and addresses[0].version == addresses[1].version:
                raise ValueError(f"networks.{name}: two addresses are one IPv4 and one IPv6 (dual stack)")
        if self.address6 is not None and self.address.version == 6:
            raise ValueError("address6 is for dual stack, next to an IPv4 address")
        return self

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        return check_image(value)

    @field_validator("mac")
    @classmethod
    def _check_mac(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _MAC.match(value.lower()):
            raise ValueError(f"expected a MAC such as 02:42:0a:4d:00:0a, got {value!r}")
        value = value.lower()
        if int(value[:2], 16) & 1:
            raise ValueError(
                f"{value} is a multicast or broadcast MAC (the first octet's lowest bit is set): "
                "a host needs a unicast one, such as 02:42:0a:4d:00:0a"
            )
        if value == "00:00:00:00:00:00":
            raise ValueError("00:00:00:00:00:00 is no host's MAC: use one such as 02:42:0a:4d:00:0a")
        return value

    @field_validator("sysctls", mode="before")
    @classmethod
    def _check_sysctls(cls, value: object) -> object:
        """Every entry's problem at once, each at its own key: a sysctl the host does not take,
        a value that is not /proc/sys's number, one out of the kernel's range."""
        if not isinstance(value, dict):
            return value
        allowed = cls._allowed_sysctls()
        found = [
            (str(name), why, number)
            for name, number in value.items()
            if (why := _sysctl_problem(str(name), number, allowed)) is not None
        ]
        if found:
            raise problems_at("sysctls", found)
        return value

    @classmethod
    def _allowed_sysctls(cls) -> dict[str, str]:
        return SUPPORTED_SYSCTLS

    @property
    def effective_mac(self) -> str:
        """A fixed MAC, so a host that powers on again keeps it (the peer's ARP cache, or its
        IPv6 neighbour cache, stays right): the address's last four bytes."""
        if self.mac:
            return self.mac
        return "02:42:" + ":".join(f"{b:02x}" for b in self.address.packed[-4:])

    def all_addresses(self) -> list[IPAddress]:
        if self.networks:
            return [a for addresses in self.networks.values() for a in addresses]
        return [self.address] if self.address6 is None else [self.address, self.address6]

    def sysctl(self, short: str, default: int) -> int:
        return self.sysctls.get(f"net.ipv4.{short}", default)

    @property
    def runs_agent(self) -> bool:
        return self.program is None and self.service is None

    @property
    def socket_options(self) -> SocketOptions:
        """What the app sets on its socket: the agent's options, or what a program declares."""
        agent = getattr(self, "agent", None)
        if agent is not None:
            return agent.socket  # type: ignore[no-any-return]
        return self.program.socket if self.program is not None else SocketOptions()

    def _check_app(self, agent_given: bool) -> None:
        if self.service is not None:
            check_service_program(self.program)
        if (self.program is not None or self.service is not None) and agent_given:
            raise ValueError("a host runs the built-in agent or a program (program/service), not both")
        if not self.runs_agent and "image" in self.model_fields_set:
            # The host container (namespace and capture) is always tcpscen's own.
            raise ValueError("a program's image goes under program.image (or comes from its service)")


class ServerHost(HostBase):
    role: Literal["server"]
    agent: ServerAgent = ServerAgent()

    @model_validator(mode="after")
    def _check_one_app(self) -> ServerHost:
        self._check_app("agent" in self.model_fields_set)
        if self.program is not None and self.program.ready is None and self.service is None:
            raise ValueError(
                "a server program needs `ready:` (port: N, log: TEXT or healthcheck), so that no client "
                "starts before it serves"
            )
        return self


class ClientHost(HostBase):
    role: Literal["client"]
    agent: ClientAgent | None = None

    @model_validator(mode="after")
    def _check_one_app(self) -> ClientHost:
        self._check_app(self.agent is not None)
        if self.agent is None and self.runs_agent:
            raise ValueError("a client needs an `agent:` (the built-in one) or a `program:` or `service:`")
        return self


class RouterHost(HostBase):
    """A middlebox: forwards between its networks (a capture on each), with NAT and connection
    tracking (`scenario.middlebox`). It runs no app; hosts on its networks route through it."""

    role: Literal["router"]
    nat: Nat = Nat()
    conntrack: Conntrack = Conntrack()

    @classmethod
    def _allowed_sysctls(cls) -> dict[str, str]:
        return {**SUPPORTED_SYSCTLS, **ROUTER_SYSCTLS}

    @model_validator(mode="after")
    def _check_no_app(self) -> RouterHost:
        given = {"program", "service", "limits", "image"} & self.model_fields_set
        if given:
            raise ValueError(f"a router runs no app: remove {', '.join(sorted(given))}")
        return self


AnyHost = ServerHost | ClientHost
Host = Annotated[ServerHost | ClientHost | RouterHost, Field(discriminator="role")]


PRIVATE_NETWORKS = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
# What a subnet that is not private is instead, for the message (the first that applies).
_SPECIAL_NETWORKS = (
    ("0.0.0.0/8", "the unspecified addresses ('this network')"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (with the broadcast address)"),
)


ULA = ipaddress.IPv6Network("fc00::/7")


class Network(StrictModel):
    subnet: SubnetText = ipaddress.IPv4Network("10.77.0.0/24")
    # IPv6 too (dual stack): a unique local subnet (fc00::/7), /64 to /120.
    subnet6: Subnet6Text | None = None

    @field_validator("subnet6")
    @classmethod
    def _check_subnet6(cls, value: ipaddress.IPv6Network | None) -> ipaddress.IPv6Network | None:
        if value is None:
            return value
        if not value.subnet_of(ULA):
            raise ValueError(
                f"{value} is not a unique local IPv6 subnet: use one inside fc00::/7, such as fd77::/64"
            )
        if not 64 <= value.prefixlen <= 120:
            raise ValueError("an IPv6 subnet here is /64 to /120")
        return value

    @field_validator("subnet")
    @classmethod
    def _check_subnet(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not any(value.subnet_of(private) for private in PRIVATE_NETWORKS):
            kind = next(
                (
                    f"includes {what}"
                    for net, what in _SPECIAL_NETWORKS
                    if value.overlaps(ipaddress.IPv4Network(net))
                ),
                "is not private",
            )
            raise ValueError(
                f"{value} {kind}: a scenario's subnet must be private (RFC 1918), inside "
                + ", ".join(str(n) for n in PRIVATE_NETWORKS)
            )
        if value.prefixlen > 29:
            raise ValueError("the subnet needs room for a gateway and the hosts: /29 or larger")
        return value


class Scenario(StrictModel):
    name: str = ""
    description: str = ""
    duration: Duration = Field(description="hard bound on the observation; the run stops there")
    settle: Duration = 1.0
    network: Network = Network()
    # Several networks, by name (hosts attach with `networks:`); empty: the one `network`.
    networks: dict[str, Network] = Field(default_factory=dict)
    hosts: dict[str, Host]
    # A Compose file whose services hosts may be (`service:`); relative to the scenario file.
    compose: str | None = None
    timeline: list[Step] = Field(default_factory=list)
    expect: Expect = Expect()
    # Values to try instead of the file's: one run per combination (`sweep.py` checks each).
    sweep: Matrix | None = None

    @field_validator("name", "description")
    @classmethod
    def _check_text(cls, value: str, info: ValidationInfo) -> str:
        return check_text(value, multiline=info.field_name == "description")

    @field_validator("duration")
    @classmethod
    def _check_duration(cls, value: float) -> float:
        if not 0 < value <= MAX_DURATION_S:
            raise ValueError(f"duration must be more than 0 and at most {MAX_DURATION_S:g}s")
        return value

    @field_validator("hosts")
    @classmethod
    def _check_names(cls, value: dict[str, Host]) -> dict[str, Host]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"host name {name!r}: use lower-case letters, digits, - and _ (max 31)")
        return value

    @field_validator("networks")
    @classmethod
    def _check_network_names(cls, value: dict[str, Network]) -> dict[str, Network]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"network name {name!r}: use lower-case letters, digits, - and _ (max 31)")
        return value

    def hosts_with_role(self, role: Literal["client", "server", "router"]) -> list[str]:
        return [name for name, host in self.hosts.items() if host.role == role]

    def apps(self) -> dict[str, AnyHost]:
        """The hosts that run an app (servers and clients; a router runs none)."""
        return {name: host for name, host in self.hosts.items() if not isinstance(host, RouterHost)}


def socket_warnings(scenario: Scenario) -> list[tuple[str, str]]:
    """(host, warning) for socket options that load but do nothing (`validate` prints them)."""
    found = ((name, host.socket_options.keepalive_unused()) for name, host in scenario.apps().items())
    return [(name, text) for name, text in found if text is not None]
