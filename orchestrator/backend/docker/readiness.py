"""Readiness checks as small strategy objects (as in testcontainers): each waits for one sign of life."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from docker.models.containers import Container

from orchestrator.errors import EngineError


@dataclass(frozen=True)
class LogLine:
    """Ready once a container's output holds `text` (tcpdump's "listening on", the agent's "listening")."""

    text: str
    timeout_s: float = 30.0

    def wait(self, container: Container, what: str) -> None:
        _poll(lambda: self._seen(container), self.timeout_s, what, container)

    def _seen(self, container: Container) -> bool:
        return self.text.encode() in container.logs(stdout=True, stderr=True)


def _poll(check: Callable[[], bool], timeout_s: float, what: str, container: Container) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        container.reload()
        if container.status not in ("created", "running"):
            tail = container.logs(tail=5).decode(errors="replace").strip()
            raise EngineError(f"{what} exited before it was ready ({container.status}): {tail}")
        time.sleep(0.05)
    raise EngineError(f"{what} was not ready within {timeout_s:g}s")
