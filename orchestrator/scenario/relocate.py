"""Move a scenario to another subnet, keeping each host's place in it, so parallel runs never collide."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from orchestrator.scenario.model import Network, Scenario

POOL = ipaddress.IPv4Network("10.77.0.0/16")


def relocate(scenario: Scenario, subnet: ipaddress.IPv4Network) -> Scenario:
    old = scenario.network.subnet
    if subnet == old:
        return scenario
    if subnet.prefixlen != old.prefixlen:
        raise ValueError(f"cannot move a /{old.prefixlen} scenario into {subnet}")
    offset = int(subnet.network_address) - int(old.network_address)
    # A derived MAC follows the address, so two parallel runs never share one; an explicit MAC stays.
    hosts = {
        name: host.model_copy(update={"address": ipaddress.IPv4Address(int(host.address) + offset)})
        for name, host in scenario.hosts.items()
    }
    return scenario.model_copy(update={"network": Network(subnet=subnet), "hosts": hosts})


def candidate_subnets(scenario: Scenario) -> Iterator[ipaddress.IPv4Network]:
    """The scenario's own subnet first, then the others of its size in 10.77.0.0/16."""
    own = scenario.network.subnet
    yield own
    if own.prefixlen < POOL.prefixlen:
        return
    for subnet in POOL.subnets(new_prefix=own.prefixlen):
        if subnet != own:
            yield subnet
