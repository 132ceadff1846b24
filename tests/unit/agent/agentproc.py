"""Runs the built-in agent (images/agent/agent.py) as real subprocesses on 127.0.0.1, and checks
every event it prints against its wire format (orchestrator/agent/wire.py).

Servers listen on port 0 and report the kernel's choice in their `listening` event. Every wait
is bounded, and every process started by the `spawn` fixture (conftest.py) is killed at teardown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.agent import wire

AGENT_PATH = Path(__file__).resolve().parents[3] / "images" / "agent" / "agent.py"
LOOPBACK = "127.0.0.1"
WAIT_S = 5.0

Event = dict[str, Any]


def wire_problems(event: Event, role: str) -> list[str]:
    """What in one printed event differs from wire's lists: its name for this role, its fields."""
    name = event.get("event")
    if name not in wire.EVENTS_BY_ROLE[role]:
        return [f"a {role} printed {name!r}, which is not in wire.EVENTS_BY_ROLE[{role!r}]"]
    spec = wire.EVENT_FIELDS[wire.Event(name)]
    keys = set(event)
    missing = (wire.COMMON_FIELDS | spec.required) - keys
    unlisted = keys - wire.COMMON_FIELDS - spec.required - spec.optional
    problems = [f"{name}: field {k!r} is missing" for k in sorted(missing)]
    return problems + [f"{name}: field {k!r} is not in wire.EVENT_FIELDS" for k in sorted(unlisted)]


class AgentProcess:
    """One agent subprocess whose stdout events are collected by a background reader."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.proc = subprocess.Popen(
            [sys.executable, str(AGENT_PATH), json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.events: list[Event] = []
        self.problems: list[str] = []  # events that do not match wire's lists (see wire_problems)
        self._stdout_done = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._cond:
                self.lines.append(line)
                self.events.append(event)
                self.problems += wire_problems(event, self.config["role"])
                self._cond.notify_all()
        with self._cond:
            self._stdout_done = True
            self._cond.notify_all()

    def find(self, name: str, **match: Any) -> list[Event]:
        with self._cond:
            return [
                e for e in self.events if e["event"] == name and all(e.get(k) == v for k, v in match.items())
            ]

    def wait_for(self, name: str, timeout: float = WAIT_S, **match: Any) -> Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event["event"] == name and all(event.get(k) == v for k, v in match.items()):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stdout_done:
                    raise AssertionError(
                        f"{self.config['host']}: no {name!r} event matching {match} "
                        f"(stdout closed: {self._stdout_done}); got {self.names()}"
                    )
                self._cond.wait(remaining)

    def wait_until(
        self, predicate: Callable[[list[Event]], bool], what: str, timeout: float = WAIT_S
    ) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.events):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stdout_done:
                    raise AssertionError(f"{self.config['host']}: never {what}; got {self.names()}")
                self._cond.wait(remaining)

    def names(self, **match: Any) -> list[str]:
        with self._cond:
            return [e["event"] for e in self.events if all(e.get(k) == v for k, v in match.items())]

    def wait_exit(self, timeout: float = WAIT_S) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        return code

    def stderr_text(self) -> str:
        assert self.proc.stderr is not None
        assert self.proc.poll() is not None, "read stderr only after the process exited"
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT_S)
        self._reader.join(timeout=WAIT_S)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


Spawn = Callable[[dict[str, Any]], AgentProcess]


def server_config(mode: str, **extra: Any) -> dict[str, Any]:
    return {"host": "server", "role": "server", "mode": mode, "port": 0, "bind": LOOPBACK, **extra}


def client_config(mode: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"host": "client", "role": "client", "mode": mode, "connect": f"{LOOPBACK}:{port}", **extra}


def start_server(spawn: Spawn, mode: str, **extra: Any) -> tuple[AgentProcess, int]:
    server = spawn(server_config(mode, **extra))
    port = server.wait_for("listening")["port"]
    assert isinstance(port, int) and port > 0
    return server, port


def connect_client(
    spawn: Spawn, server: AgentProcess, mode: str, port: int, **extra: Any
) -> tuple[AgentProcess, str]:
    """Start a client and wait until the server has accepted it; returns (client, its address)."""
    client = spawn(client_config(mode, port, **extra))
    local = client.wait_for("connected")["local"]
    server.wait_for("accepted", peer=local)
    return client, local
