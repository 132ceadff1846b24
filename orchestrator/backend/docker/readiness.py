"""Readiness checks as small strategy objects (as in testcontainers): each waits for one sign of
life, polling with tenacity, and fails fast if the container dies first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from docker.models.containers import Container
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from orchestrator.backend.docker.engine import ENGINE_ERRORS, engine_error
from orchestrator.errors import EngineError

POLL_S = 0.05


@dataclass(frozen=True)
class LogLine:
    """Ready once a container's output holds `text` (tcpdump's "listening on", the agent's "listening")."""

    text: str
    timeout_s: float = 30.0

    def wait(self, container: Container, what: str) -> None:
        poll(lambda: self._seen(container), self.timeout_s, what, container)

    def _seen(self, container: Container) -> bool:
        return self.text.encode() in container.logs(stdout=True, stderr=True)


def poll(
    check: Callable[[], bool], timeout_s: float, what: str, container: Container, every_s: float = POLL_S
) -> None:
    """Until `check()` holds; an `EngineError` if the container exits first or time runs out."""

    def ready() -> bool:
        if check():
            return True
        container.reload()
        if container.status not in ("created", "running"):
            tail = container.logs(tail=5).decode(errors="replace").strip()
            raise EngineError(f"{what} exited before it was ready ({container.status}): {tail}")
        return False

    waiting = Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(every_s),
        retry=retry_if_result(lambda done: not done),
        reraise=True,
    )
    try:
        waiting(ready)
    except RetryError:
        raise EngineError(f"{what} was not ready within {timeout_s:g}s") from None
    except ENGINE_ERRORS as exc:  # the engine went away meanwhile (a restart): exit 3, no traceback
        raise engine_error(exc, f"waiting for {what}") from None


class Readiness(Protocol):
    """When an app serves. `app` is its container, `host` the one that owns its namespace."""

    def wait(self, app: Container, host: Container, what: str) -> None: ...


@dataclass(frozen=True)
class PortListening:
    """A TCP port listening in the host's namespace, as the kernel says (`ss` in the host container)."""

    port: int
    timeout_s: float = 60.0

    def wait(self, app: Container, host: Container, what: str) -> None:
        poll(lambda: self._listening(host), self.timeout_s, f"{what} (port {self.port})", app, every_s=0.1)

    def _listening(self, host: Container) -> bool:
        code, out = host.exec_run(["ss", "-Htln", f"sport = :{self.port}"], user="root")
        return code == 0 and isinstance(out, bytes) and bool(out.strip())


@dataclass(frozen=True)
class OutputLine:
    """A line of the app's own output (stdout or stderr) holding `text`."""

    text: str
    timeout_s: float = 60.0

    def wait(self, app: Container, host: Container, what: str) -> None:
        LogLine(self.text, self.timeout_s).wait(app, f"{what} (output {self.text!r})")


@dataclass(frozen=True)
class Healthy:
    """The container's healthcheck (a Compose service's, given to the engine) reports healthy."""

    timeout_s: float = 60.0

    def wait(self, app: Container, host: Container, what: str) -> None:
        poll(lambda: _health(app) == "healthy", self.timeout_s, f"{what} (healthcheck)", app, every_s=0.1)


@dataclass(frozen=True)
class Started:
    """Nothing to wait for (a client): running is enough."""

    def wait(self, app: Container, host: Container, what: str) -> None:
        return None


def _health(app: Container) -> str | None:
    app.reload()
    health = app.attrs.get("State", {}).get("Health") or {}
    status = health.get("Status")
    return status if isinstance(status, str) else None
