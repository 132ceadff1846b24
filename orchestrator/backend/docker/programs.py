"""Each program host's `ProgramRun`: its image made or found, its command, and how it is ready,
from the scenario's `program:` or from its Compose service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from orchestrator.backend.docker.app import ProgramRun
from orchestrator.backend.docker.images import Images
from orchestrator.backend.docker.readiness import Healthy, OutputLine, PortListening, Readiness, Started
from orchestrator.backend.docker.recipes import dockerfile_image, packages_image, pulled_image, tcpscen_image
from orchestrator.errors import EngineError
from orchestrator.programs.compose import (
    ComposeError,
    Healthcheck,
    Project,
    duration_ns,
    healthcheck_of,
    read_project,
    stop_grace_of,
    stop_signal_of,
)
from orchestrator.scenario.model import AnyHost, HostBase, Scenario
from orchestrator.scenario.program import Program, Ready


def prepare_programs(
    client: docker.DockerClient, scenario: Scenario, images: Images, say: Callable[[str], None]
) -> dict[str, ProgramRun]:
    """Every host that runs a program instead of the agent, its image built or pulled now."""
    out: dict[str, ProgramRun] = {}
    project: Project | None = None
    for name, host in scenario.apps().items():
        if host.service is not None:
            if project is None:
                assert scenario.compose is not None  # the loader checked it
                try:
                    project = read_project(Path(scenario.compose))
                except ComposeError as exc:
                    raise EngineError(str(exc)) from None
            out[name] = service_run(client, project, host.service, host, images, say)
        elif host.program is not None:
            out[name] = program_run(client, host.program, host, images, say)
    return out


def service_run(
    client: docker.DockerClient,
    project: Project,
    name: str,
    host: AnyHost,
    images: Images,
    say: Callable[[str], None],
) -> ProgramRun:
    """A Compose service as tcpscen runs it: what the service defines, in the host's namespace."""
    service = project.services[name]
    program = host.program or Program()
    base = packages_image(client, images, program.packages, say)
    if service.build is not None:
        args = {k: v for k, v in service.build.args.items() if v is not None}
        image = dockerfile_image(
            client, Path(service.build.context), service.build.dockerfile, args, base, say
        )
        ours = True
    else:
        assert service.image is not None  # the loader checked it
        own = tcpscen_image(service.image, images)
        image, ours = (own, True) if own is not None else (pulled_image(client, service.image, say), False)
    check = healthcheck_of(service)
    ready = readiness(program.ready) if program.ready is not None else Started()
    if program.ready is None and check is not None and host.role == "server":
        ready = Healthy()
    return ProgramRun(
        image=image,
        argv=None,
        entrypoint=service.entrypoint,
        command=service.command,
        environment=service.env,
        working_dir=service.working_dir,
        user=service.user,
        observe=observe_mode(program, ours),
        ready=ready,
        healthcheck=_engine_healthcheck(check) if check is not None else None,
        source=f"compose service {name}",
        stop_signal=stop_signal_of(service),
        stop_grace_s=stop_grace_of(service),
    )


def _engine_healthcheck(check: Healthcheck) -> dict[str, Any]:
    """Compose's healthcheck as the engine takes it (durations in nanoseconds)."""
    out: dict[str, Any] = {"test": check.test}
    for key in ("interval", "timeout", "start_period"):
        ns = duration_ns(getattr(check, key))
        if ns is not None:
            out[key] = ns
    if check.retries is not None:
        out["retries"] = check.retries
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
