"""The lab for one run: a labelled network with its own subnet, and one pod per host."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

from orchestrator.agent.wire import READY_TEXT as AGENT_READY_TEXT
from orchestrator.backend.docker import labels
from orchestrator.backend.docker.bridge import Link
from orchestrator.backend.docker.cleanup import Removed, remove_run
from orchestrator.backend.docker.engine import ENGINE_ERRORS, connect_engine, engine_error
from orchestrator.backend.docker.images import Images, ensure_images, resolve_image
from orchestrator.backend.docker.pod import LineSink, Pod
from orchestrator.errors import EngineError
from orchestrator.interrupts import shielded
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.relocate import candidate_subnets, relocate
from orchestrator.scenario.steps import NEEDS_NET_ADMIN


class Lab:
    """Use as a context manager: whatever happens inside, every object of the run is removed on exit."""

    def __init__(
        self, scenario: Scenario, run_id: str, run_dir: Path, on_line: LineSink, say: Callable[[str], None]
    ) -> None:
        self.scenario, self.run_id, self.run_dir = scenario, run_id, run_dir
        self.on_line, self.say = on_line, say
        self.client: docker.DockerClient | None = None
        self.images: Images | None = None
        self.pods: dict[str, Pod] = {}
        self.removed: Removed | None = None
        self.link: Link | None = None
        self._dir_mode: int | None = None

    def __enter__(self) -> Lab:
        self.client = connect_engine()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.tear_down()

    def build(self) -> None:
        assert self.client is not None
        self.images = ensure_images(self.client, self.say)

    def create_network(self) -> Scenario:
        """The run's own network. If its subnet is taken (a parallel run), the next free one in
        10.77.0.0/16, with every host moved along; the scenario as it will really run is returned."""
        assert self.client is not None
        for subnet in candidate_subnets(self.scenario):
            try:
                with shielded():  # an interrupt waits until the object exists and is known
                    self.network = self.client.networks.create(
                        f"tcpscen-{self.run_id}",
                        driver="bridge",
                        internal=True,  # no route out: traffic stays between the run's own hosts
                        ipam=IPAMConfig(
                            pool_configs=[
                                IPAMPool(subnet=str(subnet), gateway=str(subnet.network_address + 1))
                            ]
                        ),
                        labels=labels.for_run(self.run_id, self.scenario.name),
                    )
            except docker.errors.APIError as exc:
                if "overlap" in str(exc).lower():
                    continue
                raise engine_error(exc, "creating the run's network") from None
            except ENGINE_ERRORS as exc:
                raise engine_error(exc, "creating the run's network") from None
            self.scenario = relocate(self.scenario, subnet)
            return self.scenario
        raise EngineError("no free subnet in 10.77.0.0/16 for this run: `tcpscen clean` removes leftovers")

    def boot_hosts(self) -> None:
        """Servers first, so their capture and agent are up before any client can connect."""
        assert self.client is not None and self.images is not None
        self._open_run_dir()
        order = sorted(self.scenario.hosts.items(), key=lambda kv: kv[1].role != "server")
        admin = {step.host for step in self.scenario.timeline if step.fault in NEEDS_NET_ADMIN}
        for name, spec in order:
            pod = Pod(
                client=self.client,
                network=self.network,
                run_id=self.run_id,
                scenario=self.scenario.name,
                name=name,
                spec=spec,
                image=resolve_image(spec.image, self.images),
                run_dir=self.run_dir,
                on_line=self.on_line,
                net_admin=name in admin,
                ready_text=AGENT_READY_TEXT if spec.role == "server" else None,
            )
            self.pods[name] = pod
            pod.boot()

    def control(self, host: str) -> HostControl:
        return HostControl(self, host)

    def wire(self) -> Link:
        if self.link is None:
            assert self.client is not None and self.images is not None
            bridge = "br-" + str(self.network.id)[:12]
            self.link = Link(self.client, self.images.agent, self.run_id, self.scenario.name, bridge)
        return self.link

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

    def socket_snapshots(self) -> dict[str, str]:
        return {name: pod.sockets() for name, pod in self.pods.items()}

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
        if self.link is not None:
            try:
                self.link.remove()
            except (RuntimeError, *ENGINE_ERRORS) as exc:
                self.say(f"could not remove the run's nftables table: {exc}; `tcpscen clean` retries")
        try:
            self.removed = remove_run(self.client, self.run_id)
            for _ in range(3 if interrupted else 0):
                time.sleep(0.3)
                if not remove_run(self.client, self.run_id).found:
                    break
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


class HostControl:
    """Every control faults may use on one host: its pod's, and the wire's at its address."""

    def __init__(self, lab: Lab, host: str) -> None:
        self.lab, self.host = lab, host
        self.pod = lab.pods[host]

    def disconnect(self) -> None:
        self.pod.disconnect()

    def reconnect(self) -> None:
        self.pod.reconnect()

    def kill_app(self, signal: str) -> None:
        self.pod.kill_app(signal)

    def pause_app(self) -> None:
        self.pod.pause_app()

    def unpause_app(self) -> None:
        self.pod.unpause_app()

    def stop_app(self, grace_s: float) -> None:
        self.pod.stop_app(grace_s)

    def restart_app(self) -> None:
        self.pod.restart_app()

    def power_off(self) -> None:
        self.pod.power_off()

    def power_on(self) -> None:
        self.pod.power_on()

    def blackhole(self, direction: str) -> None:
        self.lab.wire().blackhole(self.host, str(self.pod.spec.address), direction)

    def reject(self) -> None:
        self.pod.reject()

    def netem(self, args: list[str]) -> None:
        self.lab.wire().netem(self.host, self.pod.iflink(), args)

    def heal(self) -> None:
        if self.lab.link is not None:
            self.lab.link.heal(self.host)
        self.pod.unreject()
