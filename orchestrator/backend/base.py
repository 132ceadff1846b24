"""The backend interface: what the run loop and the faults ask of wherever the hosts live.

A backend builds the run's network and its hosts, and gives each host's controls (`Host`) and
the path between hosts (`Wire`). The run loop (`run.runner`) and the faults (`faults/`) only
ever see these protocols, so they run the same on the Docker backend (`backend.docker`), on a
fake one in the unit tests (`tests/helpers/fake_backend.py`), and on any backend to come (see
docs/kubernetes.md). Only a backend knows how a host is made; none of these calls prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

from orchestrator.scenario.model import Scenario

# (host, line): one line of an app's stdout, as it comes (the agent prints one JSON event a line).
LineSink = Callable[[str, str], None]
# A progress message for the observer ("starting hosts and captures").
Say = Callable[[str], None]


class Host(Protocol):
    """One simulated machine: a kernel (network namespace, address, MAC, sysctls, the capture)
    and the app that runs on it. Faults use these controls; each returns once it took effect."""

    name: str

    @property
    def captures(self) -> list[str]:
        """The capture files of this host so far, in the run directory: one per boot."""
        ...

    def start_app(self, config: str) -> None:
        """Start the app; return once it is ready (a server: listening)."""
        ...

    def app_running(self) -> bool: ...
    def signal_app(self, signal: str) -> None: ...
    def pause_app(self) -> None: ...
    def unpause_app(self) -> None: ...
    def stop_app(self, grace_s: float | None) -> None:
        """As docker stop: the app's stop signal, SIGKILL after `grace_s` (None: the app's own, or 10 s)."""
        ...

    def restart_app(self) -> None:
        """A new process of the same program on the same kernel."""
        ...

    def disconnect(self, network: str | None = None) -> None:
        """The cable out: the namespace loses its interface (on that network, or all of them)."""
        ...

    def reconnect(self, network: str | None = None) -> None:
        """The cable back, with the same address and MAC."""
        ...

    def power_off(self) -> float:
        """Cable first (nothing escapes the dying kernel), then the app and the kernel. When the
        cable went out: the cut, a second or so before the containers are gone."""
        ...

    def power_on(self) -> float:
        """A fresh kernel with the same address and MAC, a new capture, the same program. When
        its cables went in: the fresh kernel answers from then, before its app is ready."""
        ...

    def reject(self) -> None:
        """Every TCP segment to this host answered with an RST (a firewall in its namespace)."""
        ...

    def unreject(self) -> None: ...
    def sockets(self) -> str:
        """The kernel's own view of its TCP sockets (`ss -tanoi`), or a line saying why not."""
        ...

    def sample_sockets(self, interval_s: float) -> None:
        """Sample that view (`ss -tanoi`: every TCP socket, listeners and their accept queues
        included, with timers and counters) every `interval_s` from now until teardown, from
        inside the host's namespace and without sending a packet; after a power on the new kernel
        is sampled into a new file. Each sample is headed by its wall-clock time, on the captures'
        clock (`verdict.socket_timeline` reads the files)."""
        ...

    @property
    def socket_samples(self) -> list[str]:
        """The files `sample_sockets` wrote so far, in the run directory: one per boot."""
        ...


@runtime_checkable
class Middlebox(Protocol):
    """A router host's own controls, beside a Host's."""

    def flush_conntrack(self) -> None:
        """Forget every flow."""
        ...

    def set_idle_timeout(self, seconds: int) -> None:
        """No established flow lives longer than this after its last packet, from now on."""
        ...

    def inject(self, toward: str, flags: str, offset: int) -> str:
        """Forge a segment into the live connection toward host `toward`, with the sequence
        number it expects plus `offset`; what was sent."""
        ...


class Wire(Protocol):
    """The path between the hosts: what happens to packets between two kernels."""

    def blackhole(self, host: str, direction: str) -> None:
        """Drop the host's IP packets silently on the wire: inbound, outbound or both."""
        ...

    def loss(self, host: str, fraction: float, direction: str) -> None:
        """Drop that share of the host's IP packets at random, on the wire, one way or both."""
        ...

    def netem(self, host: str, args: list[str]) -> None:
        """Delay, lose, duplicate or reorder what reaches the host (netem's arguments)."""
        ...

    def heal(self, host: str) -> None:
        """Undo this host's blackhole and netem."""
        ...


class Backend(Protocol):
    """One run's hosts and network. Use as a context manager: leaving it removes every object
    of the run, whatever happened inside (an exception, Ctrl-C)."""

    def __enter__(self) -> Backend: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def prepare(self) -> None:
        """Make sure what hosts are made from exists (images): may take a while the first time."""
        ...

    def create_network(self) -> Scenario:
        """The run's own network; returns the scenario as it will really run (moved to a free
        subnet if its own is taken)."""
        ...

    def boot_hosts(self) -> None:
        """Every host, servers first, each with its capture listening before it returns."""
        ...

    def host(self, name: str) -> Host: ...
    def wire(self) -> Wire: ...

    def check_health(self) -> None:
        """Raise `EngineError` if the backend lost a host that no fault took down."""
        ...

    def logs(self) -> dict[str, dict[str, str]]:
        """Per host, its logs worth keeping in the run directory, by file suffix
        ({"agent.log": ..., "capture.log": ...})."""
        ...


class BackendFactory(Protocol):
    """Makes the backend of one run. `net_admin`: the hosts whose own firewall a fault changes
    (they alone get NET_ADMIN)."""

    def __call__(
        self,
        scenario: Scenario,
        run_id: str,
        run_dir: Path,
        on_line: LineSink,
        say: Say,
        net_admin: frozenset[str],
    ) -> Backend: ...
