"""Each program host's `ProgramRun`: its image made or found, its command, and how it is ready,
from the scenario's `program:` or from its Compose service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker

from orchestrator.backend.docker.app import ProgramRun
from orchestrator.backend.docker.images import Images
from orchestrator.backend.docker.readiness import Healthy, OutputLine, PortListening, Readiness, Started
from orchestrator.backend.docker.recipes import dockerfile_image, packages_image, pulled_image, tcpscen_image
from orchestrator.scenario.model import HostBase, Scenario
from orchestrator.scenario.program import Program, Ready


def prepare_programs(
    client: docker.DockerClient, scenario: Scenario, images: Images, say: Callable[[str], None]
) -> dict[str, ProgramRun]:
    """Every host that runs a program instead of the agent, its image built or pulled now."""
    out: dict[str, ProgramRun] = {}
    for name, host in scenario.hosts.items():
        if host.service is not None:
            raise NotImplementedError("compose services")
        if host.program is not None:
            out[name] = program_run(client, host.program, host, images, say)
    return out


def program_run(
    client: docker.DockerClient, program: Program, host: HostBase, images: Images, say: Callable[[str], None]
) -> ProgramRun:
    image, ours = program_image(client, program, images, say)
    return ProgramRun(
        image=image,
        argv=None,
        entrypoint=program.entrypoint,
        command=program.command,
        environment=dict(program.environment),
        working_dir=program.working_dir,
        user=program.run_as,
        observe=observe_mode(program, ours),
        ready=readiness(program.ready),
        source="program",
    )


def program_image(
    client: docker.DockerClient, program: Program, images: Images, say: Callable[[str], None]
) -> tuple[str, bool]:
    """The image's tag, and whether tcpscen made it (then it has strace)."""
    base = packages_image(client, images, program.packages, say)
    if program.build is not None:
        b = program.build
        return dockerfile_image(client, Path(b.context), b.dockerfile, dict(b.args), base, say), True
    if program.image is None:
        return base, True
    own = tcpscen_image(program.image, images)
    if own is not None:
        return own, True
    return pulled_image(client, program.image, say), False


def observe_mode(program: Program, ours: bool) -> str:
    """auto traces where tcpscen put strace in the image (its own images), else not."""
    if program.observe == "auto":
        return "auto" if ours else "none"
    return program.observe


def readiness(ready: Ready | None) -> Readiness:
    if ready is None:
        return Started()
    if ready.port is not None:
        return PortListening(ready.port, ready.timeout)
    if ready.log is not None:
        return OutputLine(ready.log, ready.timeout)
    return Healthy(ready.timeout)
