"""Connect to the Docker engine, or say clearly what to do."""

from __future__ import annotations

import shutil

import docker
import docker.errors
import requests.exceptions

from orchestrator.errors import EngineError

# The SDK lets connection failures through as requests' exceptions, not only as DockerException.
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)

SETUP_HINT = (
    "Start a Docker engine: on a Debian machine as root, `bash scripts/ensure-engine.sh` installs "
    "docker.io and starts dockerd; elsewhere start Docker Desktop or `sudo systemctl start docker`."
)


def connect_engine(timeout: int = 60) -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise EngineError(f"no Docker engine answers ({_reason(exc)}). {SETUP_HINT}") from None
    return client


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return "permission denied on the Docker socket: add yourself to the docker group, or run as root"
    if "FileNotFoundError" in text or "No such file" in text:
        if shutil.which("dockerd") is None and shutil.which("docker") is None:
            return "Docker is not installed"
        return "the engine is not running (no socket)"
    if isinstance(exc, requests.exceptions.ConnectionError) or "Connection" in text:
        return "the engine is not running or not reachable"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def engine_error(exc: Exception, doing: str) -> EngineError:
    """Wrap an SDK failure met while doing something, for exit code 3."""
    return EngineError(f"the Docker engine failed while {doing}: {_reason(exc)}")
