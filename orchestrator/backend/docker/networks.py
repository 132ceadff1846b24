"""The run's Docker networks: one internal bridge per network of the scenario (IPv6 too where
it has a subnet6), all moved together to free subnets when a parallel run holds its own."""

from __future__ import annotations

import contextlib

import docker
import docker.errors
from docker.models.networks import Network as DockerNetwork
from docker.types import IPAMConfig, IPAMPool

from orchestrator.backend.docker import labels
from orchestrator.backend.docker.engine import ENGINE_ERRORS, engine_error
from orchestrator.errors import EngineError
from orchestrator.interrupts import shielded
from orchestrator.scenario.model import Network, Scenario
from orchestrator.scenario.relocate import candidate_layouts, relocate_all
from orchestrator.scenario.topology import DEFAULT


def docker_name(run_id: str, network: str) -> str:
    """tcpscen-<run> for a flat scenario's one network (as before), tcpscen-<run>-<name> otherwise."""
    return f"tcpscen-{run_id}" if network == DEFAULT else f"tcpscen-{run_id}-{network}"


def create_networks(
    client: docker.DockerClient, run_id: str, scenario: Scenario
) -> tuple[dict[str, DockerNetwork], Scenario]:
    """Every network of the scenario, at its own subnets if they are free, else at the first
    layout in the pool where all of them are; and the scenario moved there."""
    for layout in candidate_layouts(scenario):
        made: dict[str, DockerNetwork] = {}
        try:
            for name, net in layout.items():
                made[name] = _create(client, docker_name(run_id, name), net, run_id, scenario.name)
        except _TakenError:
            for network in made.values():
                with contextlib.suppress(*ENGINE_ERRORS):
                    network.remove()
            continue
        return made, relocate_all(scenario, layout)
    pools = "10.77.0.0/16" + (" and fd77::/48" if any(n.subnet6 for n in _networks(scenario)) else "")
    raise EngineError(
        f"no free subnets in {pools} for this run's networks: each place overlapped another "
        "network (other runs', or a killed run's: `tcpscen clean` removes those)"
    )


def _networks(scenario: Scenario) -> list[Network]:
    return list(scenario.networks.values()) if scenario.networks else [scenario.network]


class _TakenError(Exception):
    """Docker refused a subnet that overlaps another network's."""


def _create(
    client: docker.DockerClient, name: str, net: Network, run_id: str, scenario: str
) -> DockerNetwork:
    pools = [IPAMPool(subnet=str(net.subnet), gateway=str(net.subnet.network_address + 1))]
    if net.subnet6 is not None:
        pools.append(IPAMPool(subnet=str(net.subnet6), gateway=str(net.subnet6.network_address + 1)))
    try:
        with shielded():  # an interrupt waits until the object exists and is known
            network: DockerNetwork = client.networks.create(
                name,
                driver="bridge",
                internal=True,  # no route out: traffic stays between the run's own hosts
                enable_ipv6=net.subnet6 is not None,
                ipam=IPAMConfig(pool_configs=pools),
                labels=labels.for_run(run_id, scenario),
            )
    except docker.errors.APIError as exc:
        if "overlap" in str(exc).lower():
            raise _TakenError from None
        raise engine_error(exc, "creating the run's network") from None
    except ENGINE_ERRORS as exc:
        raise engine_error(exc, "creating the run's network") from None
    return network
