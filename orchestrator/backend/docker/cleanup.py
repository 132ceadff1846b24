"""The reaper: remove every container and network that carries a run label."""

from __future__ import annotations

from dataclasses import dataclass, field

import docker
import docker.errors

from orchestrator.backend.docker import labels
from orchestrator.backend.docker.bridge import remove_tables
from orchestrator.backend.docker.engine import ENGINE_ERRORS
from orchestrator.backend.docker.forwarding import remove_rules, start_helper
from orchestrator.backend.docker.images import wanted_images
from orchestrator.errors import EngineError


@dataclass
class Removed:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.containers or self.networks or self.tables or self.failures)


def remove_run(client: docker.DockerClient, run_id: str | None = None) -> Removed:
    """One run's objects, or (run_id None) every tcpscen leftover on this engine."""
    selector = f"{labels.RUN}={run_id}" if run_id else labels.RUN
    removed = Removed()
    containers = client.containers.list(all=True, filters={"label": selector})
    # Apps first: they live in their host's namespace.
    containers.sort(key=lambda c: c.labels.get(labels.PART) != "app")
    for container in containers:
        try:
            if container.status == "paused":
                container.unpause()
            container.remove(force=True)
            removed.containers.append(container.name or container.id or "?")
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            removed.failures.append(f"container {container.name}: {exc}")
    for network in client.networks.list(filters={"label": selector}):
        try:
            network.remove()
            removed.networks.append(network.name or network.id or "?")
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            removed.failures.append(f"network {network.name}: {exc}")
    return removed


def leftovers(client: docker.DockerClient) -> tuple[int, int]:
    containers = client.containers.list(all=True, filters={"label": labels.RUN})
    networks = client.networks.list(filters={"label": labels.RUN})
    return len(containers), len(networks)


def remove_leftovers(client: docker.DockerClient, run_id: str | None = None) -> Removed:
    """`tcpscen clean`: the run's containers and networks, then its nftables table on the bridge
    (a blackhole left by a killed run lives in the host's namespace, not in any container)."""
    try:
        return _remove_leftovers(client, run_id)
    except ENGINE_ERRORS as exc:
        raise EngineError(f"clean-up failed: {exc}") from None


def _remove_leftovers(client: docker.DockerClient, run_id: str | None) -> Removed:
    removed = remove_run(client, run_id)
    agent = wanted_images().agent
    try:
        client.images.get(agent)
    except docker.errors.ImageNotFound:
        return removed  # without the image no run could have made a table
    try:
        removed.tables = remove_tables(client, agent, run_id)
        # A routed run's DOCKER-USER rules (backend.docker.forwarding), found by their comment.
        helper = start_helper(client, agent, labels.for_run("clean", "clean", part="forward"))
        try:
            removed.tables += remove_rules(helper, run_id)
        finally:
            helper.remove(force=True)
    except (RuntimeError, docker.errors.DockerException) as exc:
        removed.failures.append(f"nftables tables: {exc}")
    finally:
        remove_run(client, "clean")  # the helpers, even if their removal was interrupted
    return removed
