"""Readiness checks as small strategy objects (as in testcontainers): each waits for one sign of
life, polling with tenacity, and fails fast if the container dies first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


def poll(check: Callable[[], bool], timeout_s: float, what: str, container: Container) -> None:
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
        wait=wait_fixed(POLL_S),
        retry=retry_if_result(lambda done: not done),
        reraise=True,
    )
    try:
        waiting(ready)
    except RetryError:
        raise EngineError(f"{what} was not ready within {timeout_s:g}s") from None
    except ENGINE_ERRORS as exc:  # the engine went away meanwhile (a restart): exit 3, no traceback
        raise engine_error(exc, f"waiting for {what}") from None
