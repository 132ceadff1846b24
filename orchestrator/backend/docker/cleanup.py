"""The reaper: find every run's containers, networks and nftables table by their labels, and
remove those of runs whose process is dead (`owner`), never one that is still going.

Several reapers may run at once (a run's own teardown, a few `tcpscen clean`s): an object
someone else removed first (404), or is removing (409), is not a failure. Each `clean` has its
own helper, labelled with its own id and owner, so no clean removes another's.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from orchestrator.backend.docker import labels
from orchestrator.backend.docker.bridge import delete_table, list_tables, start_helper, table_name
from orchestrator.backend.docker.engine import ENGINE_ERRORS
from orchestrator.backend.docker.forwarding import IPTABLES_CAPS, Rule, comment, delete_rule, list_rules
from orchestrator.backend.docker.images import wanted_images
from orchestrator.backend.docker.owner import Owner, describe, owner_of
from orchestrator.errors import EngineError

HELPER_RUNS = ("clean-", "doctor-")  # the ids of `clean`'s and `doctor`'s own short-lived containers


@dataclass
class RunObjects:
    """One run as the engine holds it."""

    run_id: str
    owner: Owner
    who: str  # "pid 1234"
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)  # a routed run's DOCKER-USER rules


@dataclass
class Survey:
    runs: dict[str, RunObjects] = field(default_factory=dict)
    orphan_tables: list[str] = field(default_factory=list)  # no object of their run is left
    orphan_rules: list[Rule] = field(default_factory=list)
    tables_seen: bool = False  # False: no image to look with (then no run could have made one)

    def with_owner(self, owner: Owner) -> list[RunObjects]:
        return [r for r in self.runs.values() if r.owner is owner]


@dataclass
class Removed:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    kept: list[RunObjects] = field(default_factory=list)  # alive, or not ours to judge

    @property
    def found(self) -> bool:
        return bool(self.containers or self.networks or self.tables or self.failures)


def survey(client: docker.DockerClient, helper: Container | None = None) -> Survey:
    """Every run on this engine, with its owner's state; with a helper, the nft tables too.
    Tables are listed first: a table seen then belongs to a run whose network already existed,
    so a run that starts meanwhile can never have its fresh table taken for an orphan."""
    found = Survey()
    tables = list_tables(helper) if helper is not None else []
    rules = list_rules(helper) if helper is not None else []
    found.tables_seen = helper is not None
    for kind, items in (
        ("container", client.api.containers(all=True, filters={"label": labels.RUN})),
        ("network", client.api.networks(filters={"label": labels.RUN})),
    ):
        for item in items:
            tags: dict[str, str] = item.get("Labels") or {}
            run_id = tags.get(labels.RUN, "")
            run = found.runs.setdefault(run_id, RunObjects(run_id, owner_of(tags), describe(tags)))
            (run.containers if kind == "container" else run.networks).append(_name(item))
    by_table = {table_name(run_id): run for run_id, run in found.runs.items()}
    for table in tables:
        if table in by_table:
            by_table[table].tables.append(table)
        else:
            found.orphan_tables.append(table)
    by_tag = {comment(run_id): run for run_id, run in found.runs.items()}
    for rule in rules:
        if rule.tag in by_tag:
            by_tag[rule.tag].rules.append(rule)
        else:
            found.orphan_rules.append(rule)
    return found


def remove_run(client: docker.DockerClient, run_id: str) -> Removed:
    """Every container and network of one run (its teardown, or `clean`)."""
    removed = Removed()
    selector = {"label": f"{labels.RUN}={run_id}"}
    containers = client.api.containers(all=True, filters=selector)
    # Apps first: they live in their host's namespace.
    containers.sort(key=lambda c: (c.get("Labels") or {}).get(labels.PART) != "app")
    for container in containers:
        name, cid = _name(container), str(container["Id"])
        try:
            if container.get("State") == "paused":
                _tolerant(client.api.unpause, cid)
            if _tolerant(client.api.remove_container, cid, force=True):
                removed.containers.append(name)
        except docker.errors.DockerException as exc:
            removed.failures.append(f"container {name}: {exc}")
    for network in client.api.networks(filters=selector):
        try:
            if _remove_network(client, network["Id"]):
                removed.networks.append(_name(network))
        except docker.errors.DockerException as exc:
            removed.failures.append(f"network {_name(network)}: {exc}")
    return removed


def remove_leftovers(
    client: docker.DockerClient, run_id: str | None = None, *, everything: bool = False
) -> Removed:
    """`tcpscen clean`: the runs whose process is dead (or, `everything`, all of them; or the one
    run `run_id`, if dead unless `everything`): containers, networks, and the nftables table on
    the bridge (a blackhole left by a killed run lives in the machine's namespace, in no container)."""
    try:
        return _remove_leftovers(client, run_id, everything)
    except ENGINE_ERRORS as exc:
        raise EngineError(f"clean-up failed: {exc}") from None


def with_helper(client: docker.DockerClient, use: Callable[[Container | None], Survey]) -> Survey:
    """`use(helper)` with a wire helper of this process's own (None without the agent image: then
    no run could have made a table), removed afterwards whatever happened."""
    image = wanted_images().agent
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return use(None)
    own = f"clean-{secrets.token_hex(4)}"  # its own id: concurrent cleans never share a label
    # NET_RAW beside NET_ADMIN: a routed run's DOCKER-USER rules are iptables' (`forwarding`).
    helper = start_helper(client, image, labels.for_run(own, "clean", part="link"), caps=IPTABLES_CAPS)
    try:
        return use(helper)
    finally:
        _tolerant(helper.remove, force=True)
        remove_run(client, own)  # even if the removal above was interrupted


def _remove_leftovers(client: docker.DockerClient, run_id: str | None, everything: bool) -> Removed:
    removed = Removed()

    def sweep(helper: Container | None) -> Survey:
        found = survey(client, helper)
        for run in found.runs.values():
            if run_id is not None and run.run_id != run_id:
                continue
            if run.run_id.startswith(HELPER_RUNS) and run.owner is not Owner.DEAD:
                continue  # a clean or doctor going on right now (its helper), even with --all
            if run.owner is not Owner.DEAD and not everything:
                removed.kept.append(run)
                continue
            done = remove_run(client, run.run_id)
            removed.containers += done.containers
            removed.networks += done.networks
            removed.failures += done.failures
            if helper is not None:
                _delete_tables(helper, run.tables, removed)
                _delete_rules(helper, run.rules, removed)
        if helper is not None:
            wanted = table_name(run_id) if run_id is not None else None
            _delete_tables(helper, [t for t in found.orphan_tables if wanted in (None, t)], removed)
            tag = comment(run_id) if run_id is not None else None
            _delete_rules(helper, [r for r in found.orphan_rules if tag in (None, r.tag)], removed)
        return found

    try:
        with_helper(client, sweep)
    except (RuntimeError, docker.errors.DockerException) as exc:
        removed.failures.append(f"nftables tables: {exc}")
    return removed


def leftovers(client: docker.DockerClient) -> tuple[int, int]:
    """Containers and networks of dead runs."""
    dead = survey(client).with_owner(Owner.DEAD)
    return sum(len(r.containers) for r in dead), sum(len(r.networks) for r in dead)


def _delete_tables(helper: Container, tables: list[str], removed: Removed) -> None:
    for table in tables:
        try:
            if delete_table(helper, table):
                removed.tables.append(table)
        except RuntimeError as exc:
            removed.failures.append(f"table {table}: {exc}")


def _delete_rules(helper: Container, rules: list[Rule], removed: Removed) -> None:
    for rule in rules:
        if delete_rule(helper, rule):
            removed.tables.append(f"{rule.tool}: {rule.line}")
        else:
            removed.failures.append(f"{rule.tool}: could not delete {rule.line}")


def _remove_network(client: docker.DockerClient, network_id: str) -> bool:
    """Endpoints still attached (409, or 403 "has active endpoints" from engine 20.10): another
    reaper may be removing those containers right now, so try again a few times (3 s in all)
    before calling it a failure."""
    for attempt in range(10):
        try:
            client.api.remove_network(network_id)
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            busy = exc.status_code == 409 or "active endpoints" in str(exc)
            if not busy or attempt == 9:
                raise
            time.sleep(0.3)
    return False


def _tolerant(call: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """The call, with 404 (gone already) and 409 (someone is removing it, or it is not paused)
    taken as done by someone else: False then."""
    try:
        call(*args, **kwargs)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            return False
        raise
    return True


def _name(item: dict[str, Any]) -> str:
    names = item.get("Names") or [item.get("Name") or item.get("Id", "?")]
    return str(names[0]).lstrip("/")
