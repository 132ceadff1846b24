"""The scenario's networks and who is on which: one flat network (`network:`, hosts with
`address:`), or several by name (`networks:`, hosts with `networks: {name: address}`), with
router hosts forwarding between them. Pure: the backend builds what this describes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from orchestrator.scenario.app_order import app_problems
from orchestrator.scenario.model import IPAddress, Network, RouterHost, Scenario
from orchestrator.scenario.power_order import power_problems

DEFAULT = "default"  # the name of the one network of a scenario without `networks:`
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Gateway:
    """A host's default route: via this router's address on a network the host is on."""

    router: str
    network: str
    address: IPAddress


def network_map(scenario: Scenario) -> dict[str, Network]:
    return dict(scenario.networks) if scenario.networks else {DEFAULT: scenario.network}


def subnets_of(scenario: Scenario) -> str:
    """The subnets of the scenario's networks, as one line ("10.77.0.0/24" for a flat one)."""
    nets = network_map(scenario)
    if not scenario.networks:
        return str(scenario.network.subnet)
    return ", ".join(f"{name} {net.subnet}" for name, net in nets.items())


def attachments(scenario: Scenario, host: str) -> dict[str, list[IPAddress]]:
    """The networks a host is on, each with its addresses there (IPv4 and/or IPv6)."""
    spec = scenario.hosts[host]
    if spec.networks:
        return {name: list(addresses) for name, addresses in spec.networks.items()}
    return {DEFAULT: [a for a in (spec.address, spec.address6) if a is not None]}


def address_on(scenario: Scenario, host: str, network: str, version: int) -> IPAddress | None:
    return next((a for a in attachments(scenario, host).get(network, []) if a.version == version), None)


def routers(scenario: Scenario) -> list[str]:
    return [name for name, host in scenario.hosts.items() if isinstance(host, RouterHost)]


def is_router(scenario: Scenario, host: str) -> bool:
    return isinstance(scenario.hosts.get(host), RouterHost)


def gateways(scenario: Scenario, host: str) -> list[Gateway]:
    """A host that is not a router routes through the first router (by name) on its networks:
    one default route per address family it has there."""
    if is_router(scenario, host):
        return []
    mine = attachments(scenario, host)
    out: list[Gateway] = []
    for version in (4, 6):
        for router in sorted(routers(scenario)):
            found = next(
                (
                    Gateway(router, net, via)
                    for net, addresses in mine.items()
                    if any(a.version == version for a in addresses)
                    and (via := address_on(scenario, router, net, version)) is not None
                ),
                None,
            )
            if found is not None:
                out.append(found)
                break
    return out


def connect_address(scenario: Scenario, client: str, target: str) -> IPAddress:
    """Where a client's connect to `target` goes: the target's address on a network they share
    (a router's there, for a published port), else the target's own (reached through a router),
    in the family of the target's primary address."""
    family = scenario.hosts[target].address.version
    theirs = attachments(scenario, target)
    for net in attachments(scenario, client):
        for address in theirs.get(net, []):
            if address.version == family:
                return address
    return scenario.hosts[target].address


def endpoint(address: IPAddress, port: int) -> str:
    """HOST:PORT as the agent and the analysis write it: [v6]:port for IPv6."""
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def topology_problems(scenario: Scenario) -> list[tuple[Path, str]]:
    """Every host on declared networks, each address inside its network's subnet (of its family)
    and not reserved; routers on two networks or more, NAT naming networks the router is on."""
    problems: list[tuple[Path, str]] = []
    nets = network_map(scenario)
    for name, spec in scenario.hosts.items():
        if scenario.networks and not spec.networks:
            problems.append(
                (
                    ("hosts", name, "address"),
                    "this scenario declares several networks: attach the host with networks: "
                    f"{{NAME: ADDRESS}}, NAME one of {', '.join(sorted(nets))}",
                )
            )
            continue
        if spec.networks and not scenario.networks:
            problems.append(
                (
                    ("hosts", name, "networks"),
                    "networks: needs the scenario's own networks: {NAME: {subnet: ...}}",
                )
            )
            continue
        for net, addresses in attachments(scenario, name).items():
            key: Path = ("hosts", name, "networks", net) if spec.networks else ("hosts", name, "address")
            if net not in nets:
                problems.append((key, f"unknown network {net!r}; networks are {', '.join(sorted(nets))}"))
                continue
            for address in addresses:
                problems += [(key, msg) for msg in _address_problems(nets[net], address)]
        if isinstance(spec, RouterHost):
            problems += _router_problems(scenario, name, spec)
    problems += _step_problems(scenario)
    problems += power_problems(scenario)
    problems += app_problems(scenario)
    for name in scenario.expect.middlebox:
        if not is_router(scenario, name):
            problems.append(
                (
                    ("expect", "middlebox", name),
                    f"{name!r} is not a router; routers are {', '.join(routers(scenario)) or 'none'}",
                )
            )
    return problems


def _address_problems(net: Network, address: IPAddress) -> list[str]:
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network | None = (
        net.subnet if address.version == 4 else net.subnet6
    )
    if subnet is None:
        return [f"{address} is IPv6, and this network has no subnet6 (such as fd77::/64)"]
    if address not in subnet:
        return [f"{address} is outside the subnet {subnet}"]
    reserved = {subnet.network_address, subnet.network_address + 1}
    if address.version == 4:
        reserved.add(subnet.broadcast_address)
    if address in reserved:
        return [f"{address} is reserved (network, gateway or broadcast)"]
    return []


def _router_problems(scenario: Scenario, name: str, spec: RouterHost) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    mine = attachments(scenario, name)
    if len(mine) < 2:
        problems.append(
            (("hosts", name, "networks"), "a router forwards between networks: attach it to two or more")
        )
    if spec.nat.masquerade is not None and spec.nat.masquerade not in mine:
        problems.append(
            (
                ("hosts", name, "nat", "masquerade"),
                f"{name} is not on network {spec.nat.masquerade!r}; it is on {', '.join(sorted(mine))}",
            )
        )
    for i, pub in enumerate(spec.nat.publish):
        target, _ = pub.target
        key: Path = ("hosts", name, "nat", "publish", i)
        if target not in scenario.hosts or is_router(scenario, target):
            problems.append(
                ((*key, "to"), f"unknown server {target!r}; hosts are {', '.join(sorted(scenario.hosts))}")
            )
        if pub.network is not None and pub.network not in mine:
            problems.append(((*key, "network"), f"{name} is not on network {pub.network!r}"))
    return problems


def publishes(scenario: Scenario, router: str, port: int) -> bool:
    spec = scenario.hosts[router]
    return isinstance(spec, RouterHost) and any(p.port == port for p in spec.nat.publish)


_ROUTER_FAULTS = ("conntrack_flush", "idle_timeout", "inject")
_APP_FAULTS = ("kill", "stop", "restart", "pause", "unpause")


def _step_problems(scenario: Scenario) -> list[tuple[Path, str]]:
    """Router faults on routers; `network` one the host is on; `inject` toward an app host."""
    problems: list[tuple[Path, str]] = []
    for i, step in enumerate(scenario.timeline):
        if step.host not in scenario.hosts:
            continue  # said by the timeline checks
        if step.fault in _ROUTER_FAULTS and not is_router(scenario, step.host):
            problems.append(
                (
                    ("timeline", i, "host"),
                    f"{step.fault} acts on a router; routers are {', '.join(routers(scenario)) or 'none'}",
                )
            )
        if step.fault in _APP_FAULTS and is_router(scenario, step.host):
            problems.append(
                (("timeline", i, "fault"), f"{step.host} is a router: it runs no app to {step.fault}")
            )
        network = getattr(step, "network", None)
        if network is not None and network not in attachments(scenario, step.host):
            problems.append(
                (
                    ("timeline", i, "network"),
                    f"{step.host} is not on {network!r}; it is on "
                    + ", ".join(attachments(scenario, step.host)),
                )
            )
        toward = getattr(step, "toward", None)
        if toward is not None and (toward not in scenario.hosts or is_router(scenario, toward)):
            problems.append((("timeline", i, "toward"), f"unknown server or client {toward!r}"))
    return problems
