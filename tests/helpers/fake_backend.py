"""A backend with no engine, for unit tests of the run loop and the faults.

It records every control call, writes an empty capture per boot (a valid pcap header, so the
verdict stage runs on it), and plays the apps through a script: a function called on each
control call that may print lines as the app would (`FakeBackend.say_line`).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from orchestrator.backend.base import BackendFactory, LineSink, Say
from orchestrator.scenario.model import Scenario

# (backend, host, call) -> None: what the apps do when a control is used.
Script = Callable[["FakeBackend", "FakeHost", str], None]


def empty_pcap(path: Path) -> None:
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))


POWER_OFF_TEARDOWN_S = 0.15  # a power off's containers go this long after its cable


@dataclass
class FakeHost:
    name: str
    backend: FakeBackend
    captures: list[str] = field(default_factory=list)
    running: bool = False
    config: str = ""
    socket_samples: list[str] = field(default_factory=list)
    sample_interval_s: float | None = None
    powered_off_at: float | None = None  # when power_off returned (the cut was before)

    def _call(self, call: str) -> None:
        self.backend.calls.append((self.name, call))
        self.backend.script(self.backend, self, call)

    def boot(self) -> None:
        boot = len(self.captures) + 1
        pcap = f"{self.name}.pcap" if boot == 1 else f"{self.name}.boot{boot}.pcap"
        empty_pcap(self.backend.run_dir / pcap)
        self.captures.append(pcap)
        if self.sample_interval_s is not None:
            self._write_sample()

    def sample_sockets(self, interval_s: float) -> None:
        self.sample_interval_s = interval_s
        self.backend.calls.append((self.name, f"sample_sockets {interval_s:g}"))
        self._write_sample()

    def _write_sample(self) -> None:
        """One sample of a kernel with no sockets, as the sampler writes it, per boot."""
        boot = len(self.captures)
        name = f"{self.name}.ss-samples.txt" if boot == 1 else f"{self.name}.boot{boot}.ss-samples.txt"
        (self.backend.run_dir / name).write_text(
            f"# tcpscen-ss boot={boot} t={time.time():.6f} took=0.002000 rc=0\n"
            "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n# end\n"
        )
        self.socket_samples.append(name)

    def start_app(self, config: str) -> None:
        self.config, self.running = config, True
        self._call("start_app")

    def app_running(self) -> bool:
        return self.running

    def signal_app(self, signal: str) -> None:
        self._call(f"signal_app {signal}")

    def pause_app(self) -> None:
        self._call("pause_app")

    def unpause_app(self) -> None:
        self._call("unpause_app")

    def stop_app(self, grace_s: float | None) -> None:
        self._call(f"stop_app {'default' if grace_s is None else format(grace_s, 'g')}")

    def restart_app(self) -> None:
        self._call("restart_app")

    def disconnect(self, network: str | None = None) -> None:
        self._call("disconnect" if network is None else f"disconnect {network}")

    def reconnect(self, network: str | None = None) -> None:
        self._call("reconnect" if network is None else f"reconnect {network}")

    def power_off(self) -> float:
        cut = time.time()
        self.running = False
        self._call("power_off")
        time.sleep(POWER_OFF_TEARDOWN_S)  # the containers going, after the cable
        self.powered_off_at = time.time()
        return cut

    def power_on(self) -> float:
        self.boot()
        self._call("power_on")
        return time.time()

    def reject(self) -> None:
        self._call("reject")

    def unreject(self) -> None:
        self._call("unreject")

    def sockets(self) -> str:
        return "State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"


@dataclass
class FakeRouter(FakeHost):
    """A host with a router's controls (backend.base.Middlebox)."""

    def flush_conntrack(self) -> None:
        self._call("flush_conntrack")

    def set_idle_timeout(self, seconds: int) -> None:
        self._call(f"set_idle_timeout {seconds}")

    def inject(self, toward: str, flags: str, offset: int) -> str:
        self._call(f"inject {toward} {flags} {offset:+d}")
        return "forged"


@dataclass
class FakeWire:
    backend: FakeBackend

    def blackhole(self, host: str, direction: str) -> None:
        self.backend.calls.append((host, f"blackhole {direction}"))
        self.backend.script(self.backend, self.backend.hosts[host], f"blackhole {direction}")

    def netem(self, host: str, args: list[str]) -> None:
        self.backend.calls.append((host, "netem " + " ".join(args)))

    def loss(self, host: str, fraction: float, direction: str) -> None:
        self.backend.calls.append((host, f"loss {fraction:g} {direction}"))

    def heal(self, host: str) -> None:
        self.backend.calls.append((host, "heal"))


def quiet(backend: FakeBackend, host: FakeHost, call: str) -> None:
    """Apps that print nothing and run until the end."""


class FakeBackend:
    def __init__(
        self,
        scenario: Scenario,
        run_id: str,
        run_dir: Path,
        on_line: LineSink,
        say: Say,
        net_admin: frozenset[str],
        script: Script = quiet,
    ) -> None:
        self.scenario, self.run_id, self.run_dir = scenario, run_id, run_dir
        self.on_line, self.say_step, self.net_admin, self.script = on_line, say, net_admin, script
        self.hosts: dict[str, FakeHost] = {}
        self.calls: list[tuple[str, str]] = []
        self.entered = self.exited = False
        self.exit_type: type[BaseException] | None = None
        self.booted: list[str] = []

    @classmethod
    def factory(cls, script: Script = quiet, made: list[FakeBackend] | None = None) -> BackendFactory:
        """A `BackendFactory` that remembers the backends it made (in `made`)."""

        def make(
            scenario: Scenario,
            run_id: str,
            run_dir: Path,
            on_line: LineSink,
            say: Say,
            net_admin: frozenset[str],
        ) -> FakeBackend:
            backend = cls(scenario, run_id, run_dir, on_line, say, net_admin, script)
            if made is not None:
                made.append(backend)
            return backend

        return make

    def __enter__(self) -> FakeBackend:
        self.entered = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.exited, self.exit_type = True, exc_type

    def prepare(self) -> None:
        self.calls.append(("", "prepare"))

    def create_network(self) -> Scenario:
        return self.scenario

    def boot_hosts(self) -> None:
        order = sorted(self.scenario.hosts.items(), key=lambda kv: kv[1].role != "server")
        for name, _ in order:
            host = self.hosts[name] = FakeHost(name, self)
            host.boot()
            self.booted.append(name)

    def host(self, name: str) -> FakeHost:
        return self.hosts[name]

    def wire(self) -> FakeWire:
        return FakeWire(self)

    def check_health(self) -> None:
        pass

    def logs(self) -> dict[str, dict[str, str]]:
        return {name: {"agent.log": f"{name} log\n"} for name in self.hosts}

    def say_line(self, host: str, event: str, **fields: object) -> None:
        """Print one agent event line from `host`'s app, stamped now."""
        self.on_line(host, json.dumps({"event": event, "t": time.time(), **fields}))
