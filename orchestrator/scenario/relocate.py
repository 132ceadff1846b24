"""Move a scenario to other subnets, keeping each host's place in its network, so parallel runs
never collide. Every network of the scenario moves (IPv4 in 10.77.0.0/16, IPv6 in fd77::/48)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from orchestrator.scenario.model import HostBase, IPAddress, Network, Scenario

POOL = ipaddress.IPv4Network("10.77.0.0/16")
POOL6 = ipaddress.IPv6Network("fd77::/48")
# network name -> where it goes; the one network of a flat scenario is "default".
Layout = dict[str, Network]


def relocate(scenario: Scenario, subnet: ipaddress.IPv4Network) -> Scenario:
    """A flat scenario moved to `subnet` (its IPv6 subnet, if any, stays)."""
    old = scenario.network.subnet
    if subnet == old:
        return scenario
    if subnet.prefixlen != old.prefixlen:
        raise ValueError(f"cannot move a /{old.prefixlen} scenario into {subnet}")
    return relocate_all(scenario, {"default": scenario.network.model_copy(update={"subnet": subnet})})


def relocate_all(scenario: Scenario, layout: Layout) -> Scenario:
    """Every network to its place in `layout`, every host's addresses along with it. A derived MAC
    follows the (first) address, so two parallel runs never share one; an explicit MAC stays."""
    old = dict(scenario.networks) if scenario.networks else {"default": scenario.network}
    if all(layout[name] == net for name, net in old.items()):
        return scenario

    def moved(address: IPAddress, net: str) -> IPAddress:
        before, after = old[net], layout[net]
        if address.version == 4:
            return ipaddress.IPv4Address(
                int(after.subnet.network_address) + int(address) - int(before.subnet.network_address)
            )
        if before.subnet6 is None or after.subnet6 is None:
            return address
        return ipaddress.IPv6Address(
            int(after.subnet6.network_address) + int(address) - int(before.subnet6.network_address)
        )

    def host_moved(host: HostBase) -> HostBase:
        if host.networks:
            networks = {net: [moved(a, net) for a in addrs] for net, addrs in host.networks.items()}
            first = next(iter(networks.values()))[0]
            return host.model_copy(update={"networks": networks, "address": first})
        update: dict[str, object] = {"address": moved(host.address, "default")}
        if host.address6 is not None:
            update["address6"] = moved(host.address6, "default")
        return host.model_copy(update=update)

    hosts = {name: host_moved(host) for name, host in scenario.hosts.items()}
    nets: dict[str, object] = (
        {"networks": dict(layout)} if scenario.networks else {"network": layout["default"]}
    )
    return scenario.model_copy(update={**nets, "hosts": hosts})


def candidate_subnets(scenario: Scenario) -> Iterator[ipaddress.IPv4Network]:
    """The scenario's own subnet first, then the others of its size in 10.77.0.0/16."""
    own = scenario.network.subnet
    yield own
    if own.prefixlen < POOL.prefixlen:
        return
    for subnet in POOL.subnets(new_prefix=own.prefixlen):
        if subnet != own:
            yield subnet


def candidate_layouts(scenario: Scenario) -> Iterator[Layout]:
    """The scenario's own networks first; then layouts that put its k networks in the k-th
    blocks of the pools (IPv4 blocks the size of its largest network, IPv6 blocks of each
    network's own size), never the same twice."""
    own = dict(scenario.networks) if scenario.networks else {"default": scenario.network}
    yield own
    names = list(own)
    prefix = min(net.subnet.prefixlen for net in own.values())
    if prefix < POOL.prefixlen:
        return
    blocks = list(POOL.subnets(new_prefix=prefix))
    for start in range(0, len(blocks) - len(names) + 1, len(names)):
        layout: Layout = {}
        for i, name in enumerate(names):
            net = own[name]
            block = blocks[start + i]
            subnet = ipaddress.IPv4Network((block.network_address, net.subnet.prefixlen))
            update: dict[str, object] = {"subnet": subnet}
            if net.subnet6 is not None:
                update["subnet6"] = _block6(net.subnet6, start + i)
            layout[name] = net.model_copy(update=update)
        if any(layout[name].subnet != own[name].subnet for name in names):
            yield layout


def _block6(subnet6: ipaddress.IPv6Network, index: int) -> ipaddress.IPv6Network:
    """The index-th block of the subnet's size in fd77::/48, wherever the scenario put it (as an
    IPv4 subnet moves into 10.77.0.0/16): one left in place collides with the run holding it in
    every layout (measured: fd77:50::/64 with -j 3, two of three runs found no free subnet)."""
    if subnet6.prefixlen < POOL6.prefixlen:
        return subnet6  # larger than the pool: it can only stay
    step = 1 << (128 - subnet6.prefixlen)
    return ipaddress.IPv6Network((int(POOL6.network_address) + index * step, subnet6.prefixlen))
