"""A program of the user's as a host's app, instead of the built-in agent: what to run (an image,
or one tcpscen builds offline from Debian packages or a Dockerfile; a command, its environment,
working directory and user) and how tcpscen treats it (when it is ready, whether its syscalls
are traced, what it sets on its socket for the kernel model)."""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.scenario.base import StrictModel
from orchestrator.scenario.names import check_image
from orchestrator.scenario.sockopts import SocketOptions
from orchestrator.scenario.units import Duration

# The image a program runs in when it names none: tcpscen's base (Debian bookworm with python3,
# nc, strace, iproute2), built offline like the agent's.
BASE_IMAGE = "tcpscen/base"
NOBODY = "65534:65534"
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$|^[0-9]{1,10}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
Observe = Literal["auto", "syscalls", "none"]
# What a Compose service defines itself: a host naming the service may not say it again.
# (`packages` may still be given: the Debian packages of the BASE its Dockerfile builds FROM.)
SERVICE_DEFINES = (
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "working_dir",
    "user",
)


class Ready(StrictModel):
    """When a server program serves: a port listening in its namespace (seen with `ss` from the
    host container), a line in its output, or its (Compose) healthcheck passing. Exactly one."""

    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    log: str | None = Field(default=None, min_length=1, max_length=500)
    healthcheck: bool = False
    timeout: Duration = 60.0

    @model_validator(mode="after")
    def _check_one(self) -> Ready:
        given = [self.port is not None, self.log is not None, self.healthcheck]
        if sum(given) != 1:
            raise ValueError("ready takes exactly one of port: N, log: TEXT, healthcheck: true")
        return self


class Build(StrictModel):
    """A Dockerfile of the user's. tcpscen passes `--build-arg BASE=<its base image>` (with the
    program's `packages`, if any), so `ARG BASE` + `FROM ${BASE}` builds offline."""

    context: str = Field(min_length=1, description="folder, relative to the scenario file")
    dockerfile: str = "Dockerfile"
    args: dict[str, str] = Field(default_factory=dict)


def _words(value: list[str] | str | None) -> list[str] | None:
    """A command as a list; a string is split into words the way Compose splits it (no shell)."""
    if value is None or isinstance(value, list):
        return value
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot split {value!r} into words: {exc}") from None


class Program(StrictModel):
    image: str | None = None
    packages: list[str] = Field(default_factory=list)
    build: Build | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    ready: Ready | None = None
    # auto: traced where tcpscen provides strace (its own images); syscalls: always; none: never.
    observe: Observe = "auto"
    socket: SocketOptions = SocketOptions()

    @field_validator("command", "entrypoint", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _words(value) if isinstance(value, str) else value

    @field_validator("command", "entrypoint")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or any("\x00" in w for w in value)):
            raise ValueError("a command needs at least one word, and no NUL characters")
        return value

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str | None) -> str | None:
        return None if value is None else check_image(value)

    @field_validator("packages")
    @classmethod
    def _check_packages(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not _PACKAGE.match(p)]
        if bad:
            raise ValueError(f"not a Debian package name: {', '.join(map(repr, bad))}")
        return value

    @field_validator("user")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        if value is not None and not all(_USER.match(part) for part in value.split(":", 1)):
            raise ValueError(
                f"expected a user name or uid, optionally :group, such as 65534:65534, got {value!r}"
            )
        return value

    @field_validator("environment")
    @classmethod
    def _check_environment(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k, v in value.items() if not _ENV.match(k) or "\x00" in v]
        if bad:
            raise ValueError(f"not an environment variable name (or a NUL in its value): {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _check_image_source(self) -> Program:
        if self.image is not None and (self.packages or self.build is not None):
            raise ValueError("image names an image; packages and build make one: give one or the other")
        return self

    @property
    def run_as(self) -> str:
        """Least privilege by default: nobody, as the agent runs."""
        return self.user or NOBODY


def check_service_program(program: Program | None) -> None:
    """A host that names a Compose service takes what to run from the service."""
    if program is None:
        return
    given = [key for key in SERVICE_DEFINES if key in program.model_fields_set]
    if given:
        raise ValueError(
            f"program.{', program.'.join(given)}: the Compose service defines that; with `service:`, "
            "program takes only ready, observe, socket and packages (for the BASE of its build)"
        )
