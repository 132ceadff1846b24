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
import docker.errors
from docker.types import IPAMConfig, IPAMPool
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from orchestrator.agent.wire import READY_TEXT as AGENT_READY_TEXT
from orchestrator.backend.base import LineSink, Say
from orchestrator.backend.docker import labels
from orchestrator.backend.docker.app import ProgramRun
from orchestrator.backend.docker.bridge import Bridge
from orchestrator.backend.docker.cleanup import Removed, remove_run
from orchestrator.backend.docker.engine import ENGINE_ERRORS, connect_engine, engine_error
from orchestrator.backend.docker.images import Images, ensure_images, resolve_image
from orchestrator.backend.docker.pod import Pod
from orchestrator.backend.docker.programs import prepare_programs
from orchestrator.errors import EngineError
from orchestrator.interrupts import shielded
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.relocate import candidate_subnets, relocate


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
        self.programs: dict[str, ProgramRun] = {}  # hosts that run a user's program
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
        self.programs = prepare_programs(self.client, self.scenario, self.images, self.say)

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
                net_admin=name in self.net_admin,
                ready_text=AGENT_READY_TEXT if spec.role == "server" else None,
                program=self.programs.get(name),
                extra_hosts=self._names(),
            )
            self.pods[name] = pod
            pod.boot()

    def _names(self) -> dict[str, str]:
        """Every host's name, and the Compose service it runs, resolving to its address."""
        names = {h.service: str(h.address) for h in self.scenario.hosts.values() if h.service}
        return {**names, **{n: str(h.address) for n, h in self.scenario.hosts.items()}}

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
            kept = {
                "agent.log": pod.agent_log,
                "app.log": pod.app_log,
                "capture.log": "\n".join(pod.capture_logs),
            }
            out[name] = {
                suffix: text for suffix, text in kept.items() if text or (suffix == "app.log" and pod.program)
            }
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
