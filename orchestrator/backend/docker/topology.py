"""From the scenario's topology (`scenario.topology`) to pods: which Docker networks each host
joins with which addresses, its default routes, and a router's ruleset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
from docker.models.networks import Network

from orchestrator.backend.base import LineSink
from orchestrator.backend.docker.app import ProgramRun
from orchestrator.backend.docker.pod import Pod
from orchestrator.backend.docker.router import RouterPod, ruleset
from orchestrator.scenario.model import AnyHost, ClientHost, RouterHost, Scenario
from orchestrator.scenario.topology import attachments, gateways, network_map


def make_pod(
    scenario: Scenario,
    name: str,
    *,
    client: docker.DockerClient,
    networks: dict[str, Network],
    run_id: str,
    image: str,
    new_file: Callable[[str, int, int], Path],
    capture_user: str,
    on_line: LineSink,
    net_admin: bool,
    ready_text: str | None,
    program: ProgramRun | None,
    extra_hosts: dict[str, str],
) -> Pod:
    spec = scenario.hosts[name]
    attach = {net: [str(a) for a in addresses] for net, addresses in attachments(scenario, name).items()}
    mine = {net: networks[net] for net in attach}
    kind = RouterPod if isinstance(spec, RouterHost) else Pod
    pod = kind(
        client=client,
        network=next(iter(mine.values())),
        run_id=run_id,
        scenario=scenario.name,
        name=name,
        spec=spec,
        image=image,
        new_file=new_file,
        capture_user=capture_user,
        on_line=on_line,
        net_admin=net_admin,
        ready_text=ready_text,
        program=program,
        extra_hosts=extra_hosts,
        networks=mine,
        attach=attach,
        gateways=gateways(scenario, name),
    )
    if isinstance(pod, RouterPod) and isinstance(spec, RouterHost):
        nets = network_map(scenario)
        subnets = {
            net: [str(s) for s in (nets[net].subnet, nets[net].subnet6) if s is not None] for net in attach
        }

        def resolve(host: str, version: int) -> str | None:
            found = [
                a for addrs in attachments(scenario, host).values() for a in addrs if a.version == version
            ]
            return str(found[0]) if found else None

        pod.spec_router, pod.rules = spec, ruleset(spec, subnets, attach, resolve)
        pod.peers = {
            host: [str(a) for addrs in attachments(scenario, host).values() for a in addrs]
            for host in scenario.hosts
            if host != name
        }
        ports = {host: _service_port(app) for host, app in scenario.apps().items()}
        pod.ports = {host: port for host, port in ports.items() if port is not None}
    return pod


def _service_port(host: AnyHost) -> int | None:
    """The port a host's connections use: a server's, or an agent client's target's."""
    if isinstance(host, ClientHost):
        return host.agent.target[1] if host.agent is not None else None
    if host.program is not None:  # a server program: the port its readiness waits for, if that
        return host.program.ready.port if host.program.ready is not None else None
    return host.agent.port
