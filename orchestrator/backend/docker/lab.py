"""The Docker backend for one run: a labelled network with its own subnet, and one pod per host.

`Lab` is the `backend.base.Backend` the run loop drives; each `Pod` is a `Host`; the run's
bridge (`bridge.Bridge`) is the `Wire`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

import docker
from docker.models.networks import Network
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from orchestrator.agent.wire import READY_TEXT as AGENT_READY_TEXT
from orchestrator.backend.base import LineSink, Say
from orchestrator.backend.docker.bridge import Bridge
from orchestrator.backend.docker.cleanup import Removed, remove_run
from orchestrator.backend.docker.engine import ENGINE_ERRORS, connect_engine
from orchestrator.backend.docker.forwarding import Forwarding, bridge_name
from orchestrator.backend.docker.images import Images, ensure_images, resolve_image
from orchestrator.backend.docker.networks import create_networks
from orchestrator.backend.docker.pod import Pod
from orchestrator.backend.docker.topology import make_pod
from orchestrator.errors import EngineError
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.topology import routers


class Lab:
    """Use as a context manager: whatever happens inside, every object of the run is removed on exit."""

    def __init__(
        self,
        scenario: Scenario,
        run_id: str,
        run_dir: Path,
        on_line: LineSink,
        say: Say,
        net_admin: frozenset[str] = frozenset(),
    ) -> None:
        self.scenario, self.run_id, self.run_dir = scenario, run_id, run_dir
        self.on_line, self.say = on_line, say
        self.net_admin = net_admin  # hosts whose own firewall a fault changes
        self.client: docker.DockerClient | None = None
        self.images: Images | None = None
        self.pods: dict[str, Pod] = {}
        self.networks: dict[str, Network] = {}
        self.forwarding: Forwarding | None = None  # routed packets across the run's bridges
        self.removed: Removed | None = None
        self.bridge: Bridge | None = None
        self._dir_mode: int | None = None

    def __enter__(self) -> Lab:
        self.client = connect_engine()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # An interrupted create may still complete on the engine after we stopped waiting for it.
        self.tear_down(interrupted=exc_type is not None and not issubclass(exc_type, Exception))

    def prepare(self) -> None:
        assert self.client is not None
        self.images = ensure_images(self.client, self.say)

    def create_network(self) -> Scenario:
        """The run's own networks. If a subnet is taken (a parallel run), the first layout in
        10.77.0.0/16 where all are free, with every host moved along; the scenario as it will
        really run is returned."""
        assert self.client is not None
        self.networks, self.scenario = create_networks(self.client, self.run_id, self.scenario)
        self.network = next(iter(self.networks.values()))
        if routers(self.scenario):
            assert self.images is not None
            self.forwarding = Forwarding(self.client, self.images.agent, self.run_id, self.scenario.name)
            try:
                self.forwarding.allow([bridge_name(str(n.id)) for n in self.networks.values()])
            except (RuntimeError, *ENGINE_ERRORS) as exc:
                raise EngineError(f"letting routed packets cross the run's bridges: {exc}") from None
        return self.scenario

    def boot_hosts(self) -> None:
        """Routers first, then servers, so the path and the servers' captures and agents are up
        before any client can connect."""
        assert self.client is not None and self.images is not None
        self._open_run_dir()
        order = sorted(
            self.scenario.hosts.items(),
            key=lambda kv: ("router", "server").index(kv[1].role) if kv[1].role != "client" else 2,
        )
        for name, spec in order:
            pod = make_pod(
                self.scenario,
                name,
                client=self.client,
                networks=self.networks,
                run_id=self.run_id,
                image=resolve_image(spec.image, self.images),
                run_dir=self.run_dir,
                on_line=self.on_line,
                net_admin=name in self.net_admin,
                ready_text=AGENT_READY_TEXT if spec.role == "server" else None,
            )
            self.pods[name] = pod
            pod.boot()

    def host(self, name: str) -> Pod:
        return self.pods[name]

    def wire(self) -> Bridge:
        if self.bridge is None:
            assert self.client is not None and self.images is not None
            self.bridge = Bridge(self.client, self.images.agent, self.run_id, self.scenario, self.pods)
        return self.bridge

    def check_health(self) -> None:
        """The engine answers, and every powered host is still running: else the run proves nothing."""
        assert self.client is not None
        try:
            self.client.ping()
            for name, pod in self.pods.items():
                if pod.host is not None:
                    pod.host.reload()
                    if pod.host.status != "running":
                        raise EngineError(
                            f"host {name}'s container is {pod.host.status}, and no fault did that: "
                            "did the engine restart?"
                        )
        except ENGINE_ERRORS as exc:
            raise EngineError(f"the Docker engine stopped answering mid-run ({type(exc).__name__})") from None

    def logs(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for name, pod in self.pods.items():
            kept = {"agent.log": pod.agent_log, "capture.log": "\n".join(pod.capture_logs)}
            out[name] = {suffix: text for suffix, text in kept.items() if text}
        return out

    def tear_down(self, interrupted: bool = False) -> None:
        """Stop captures (flush), then remove by label: also whatever a half-made step left unnamed.

        An interrupted call (Ctrl-C during `create`) may still complete on the engine after we gave up
        waiting for it, so after an interruption the label sweep runs again until it finds nothing."""
        if self.client is None:
            return
        for pod in self.pods.values():
            if pod.paused:
                with contextlib.suppress(*ENGINE_ERRORS):
                    pod.unpause_app()
            pod.collect_agent_log()
            pod.stop_capture()
        if self.forwarding is not None:
            try:
                self.forwarding.remove()
            except (RuntimeError, *ENGINE_ERRORS) as exc:
                self.say(f"could not remove the run's DOCKER-USER rules: {exc}; `tcpscen clean` retries")
        if self.bridge is not None:
            try:
                self.bridge.remove()
            except (RuntimeError, *ENGINE_ERRORS) as exc:
                self.say(f"could not remove the run's nftables table: {exc}; `tcpscen clean` retries")
        client = self.client
        try:
            self.removed = remove_run(client, self.run_id)
            if interrupted:  # sweep again, 0.3 s apart, until a sweep finds nothing (at most 4)
                sweep = Retrying(
                    stop=stop_after_attempt(4),
                    wait=wait_fixed(0.3),
                    retry=retry_if_result(bool),
                    retry_error_callback=lambda _: None,
                )
                sweep(lambda: remove_run(client, self.run_id).found)
        except ENGINE_ERRORS as exc:
            self.say(f"clean-up failed: {exc}; `tcpscen clean` removes what is left")
        for pod in self.pods.values():
            pod.join_followers()
        self._close_run_dir()

    def _open_run_dir(self) -> None:
        # As root the capture runs as the image's tcpdump user, which must be able to write here.
        if os.getuid() == 0 and self._dir_mode is None:
            self._dir_mode = self.run_dir.stat().st_mode & 0o7777
            self.run_dir.chmod(0o1777)

    def _close_run_dir(self) -> None:
        if self._dir_mode is not None:
            self.run_dir.chmod(self._dir_mode)
            self._dir_mode = None
