from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.agent.agentproc import AgentProcess, Spawn


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Starts agents; at teardown kills them, then fails the test if any printed an event that
    wire.py does not list for its role, or with fields it does not list."""
    started: list[AgentProcess] = []

    def start(config: dict[str, Any]) -> AgentProcess:
        process = AgentProcess(config)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
    problems = [f"{p.config['host']}: {problem}" for p in started for problem in p.problems]
    assert not problems, problems
