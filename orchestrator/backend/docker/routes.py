"""A host's default routes through a router, set in its namespace by a short-lived helper
container that joins it with NET_ADMIN alone: the host container itself keeps only NET_RAW."""

from __future__ import annotations

import docker
from docker.models.containers import Container

from orchestrator.backend.docker import labels, limits
from orchestrator.backend.docker.engine import ENGINE_ERRORS, engine_error
from orchestrator.interrupts import shielded
from orchestrator.scenario.topology import Gateway


def route_commands(gateways: list[Gateway]) -> str:
    return " && ".join(
        f"ip {'-6 ' if g.address.version == 6 else ''}route replace default via {g.address}" for g in gateways
    )


def set_default_routes(
    client: docker.DockerClient,
    image: str,
    host: Container,
    gateways: list[Gateway],
    run_id: str,
    scenario: str,
) -> None:
    script = route_commands(gateways)
    try:
        with shielded():
            client.containers.run(
                image,
                ["sh", "-c", script],
                network_mode=f"container:{host.id}",
                user="root",
                cap_drop=["ALL"],
                cap_add=["NET_ADMIN"],
                labels=labels.for_run(run_id, scenario, part="route"),
                remove=True,
                **limits.HELPER,
            )
    except ENGINE_ERRORS as exc:
        raise engine_error(exc, f"setting the default route ({script})") from None
