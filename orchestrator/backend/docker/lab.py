"""The Docker backend for one run: a labelled network with its own subnet, and one pod per host.

`Lab` is the `backend.base.Backend` the run loop drives; each `Pod` is a `Host`; the run's
bridge (`bridge.Bridge`) is the `Wire`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from types import TracebackType

import docker
import docker.errors
from docker.models.networks import Network
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from orchestrator import interrupts
from orchestrator.agent.wire import READY_TEXT as AGENT_READY_TEXT
from orchestrator.backend.base import LineSink, Say
from orchestrator.backend.docker import labels
from orchestrator.backend.docker.app import ProgramRun
from orchestrator.backend.docker.bridge import Bridge
from orchestrator.backend.docker.cleanup import Removed, remove_run
from orchestrator.backend.docker.engine import ENGINE_ERRORS, connect_engine
from orchestrator.backend.docker.forwarding import Forwarding, bridge_name
from orchestrator.backend.docker.images import Images, ensure_images, resolve_image
from orchestrator.backend.docker.networks import create_networks
from orchestrator.backend.docker.pod import Pod, capture_ids
from orchestrator.backend.docker.programs import prepare_programs
from orchestrator.backend.docker.topology import make_pod
from orchestrator.errors import EngineError
from orchestrator.rundir import RunDir
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.topology import connect_address, routers

# After the apps are frozen at teardown: long enough for the last segments in flight between
# live kernels to be acknowledged (microseconds on the bridge), short against a teardown.
FREEZE_SETTLE_S = 0.05


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
        self.networks: dict[str, Network] = {}
        self.forwarding: Forwarding | None = None  # routed packets across the run's bridges
        self.removed: Removed | None = None
        self.bridge: Bridge | None = None
        self.files: RunDir | None = None
        self.network: Network | None = None
        self._hold = 0
        self._swept = False  # every container and network of the run removed

    def __enter__(self) -> Lab:
        self.client = connect_engine()
        # From here a clean-up is owed: signals after the first wait for it (`interrupts`).
        self._hold = interrupts.hold(self.what_may_be_left)
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
        assert self.client is not None and self.images is not None and self.network is not None
        self.files = self.files or RunDir.open(self.run_dir)
        uid, gid = capture_ids()
        first = ("router", "server", "client")
        order = sorted(self.scenario.hosts.items(), key=lambda kv: first.index(kv[1].role))
        for name, spec in order:
            pod = make_pod(
                self.scenario,
                name,
                client=self.client,
                networks=self.networks,
                run_id=self.run_id,
                image=resolve_image(spec.image, self.images),
                new_file=self._new_file,
                capture_user=f"{uid}:{gid}",
                on_line=self.on_line,
                net_admin=name in self.net_admin,
                ready_text=AGENT_READY_TEXT if spec.role == "server" else None,
                program=self.programs.get(name),
                extra_hosts=self._names(name),
            )
            self.pods[name] = pod
            pod.boot()

    def _names(self, me: str) -> dict[str, str]:
        """Every host's name, and the Compose service it runs, resolving to the address `me`
        reaches it at (as the agent's `connect` does: on a network they share, else its first)."""
        seen = {n: str(connect_address(self.scenario, me, n)) for n in self.scenario.hosts if n != me}
        seen[me] = str(self.scenario.hosts[me].address)
        services = {h.service: seen[n] for n, h in self.scenario.hosts.items() if h.service}
        return {**services, **seen}

    def host(self, name: str) -> Pod:
        return self.pods[name]

    def wire(self) -> Bridge:
        if self.bridge is None:
            assert self.client is not None and self.images is not None
            self.bridge = Bridge(self.client, self.images.agent, self.run_id, self.scenario, self.pods)
            for pod in self.pods.values():
                pod.on_rewired = self.bridge.rewired
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
            } | pod.kept_files()
        return out

    def tear_down(self, interrupted: bool = False) -> None:
        """Stop captures (flush), then remove by label: also whatever a half-made step left unnamed.
        It runs to its end whatever signals arrive, but a third (`interrupts.cleaning`), and tells
        `interrupts` what it could not remove, as the engine says once it is done.

        An interrupted call (Ctrl-C during `create`) may still complete on the engine after we gave up
        waiting for it, so after an interruption the label sweep runs again until it finds nothing."""
        if self.client is None:
            return
        with interrupts.cleaning():
            self._tear_down(self.client, interrupted)
            left = self._still_there(self.client)
        interrupts.release(self._hold, left)

    def what_may_be_left(self) -> list[str]:
        """For an aborted clean-up, from what this object knows (no engine call: it may be what hangs)."""
        items = []
        if not self._swept and (self.network is not None or self.pods):
            items.append(f"the containers and network of run {self.run_id} (label tcpscen.run={self.run_id})")
        if self.bridge is not None and self.bridge.has_table:
            items.append(f"nftables table bridge {self.bridge.table}")
        items += self._rules_left()
        return items

    def _rules_left(self) -> list[str]:
        tag = self.forwarding.rule_comment if self.forwarding is not None else None
        return [f"DOCKER-USER rules with comment {tag}"] if tag else []

    def _freeze_apps(self, *, settle: bool) -> None:
        """Every app frozen before the first capture stops, and its data in flight acknowledged.
        Stopping a capture ends its host's namespace: a peer still sending into it retransmitted
        into the void while its own capture ran on (measured: a healthy bulk transfer's client
        capture ended with a retransmission 0.13 to 0.45 s after the observation, read as a
        retransmission and an RTO abort to come). A frozen app sends nothing; its kernel still
        acknowledges. Removal kills paused containers as it does the others."""
        for pod in self.pods.values():
            if pod.app is not None and not pod.paused:
                with contextlib.suppress(*ENGINE_ERRORS):
                    pod.pause_app()
        if settle:
            time.sleep(FREEZE_SETTLE_S)

    def _still_there(self, client: docker.DockerClient) -> list[str]:
        """What the engine still has of this run after the clean-up, by its label."""
        selector = {"label": f"{labels.RUN}={self.run_id}"}
        try:
            containers = client.api.containers(all=True, filters=selector)
            networks = client.api.networks(filters=selector)
        except ENGINE_ERRORS as exc:
            why = type(exc).__name__
            return [f"whatever of run {self.run_id} the engine still has (it did not answer: {why})"]
        found = [f"container {c['Names'][0].lstrip('/')}" for c in containers]
        found += [f"network {n['Name']}" for n in networks]
        if self.bridge is not None and self.bridge.has_table:
            found.append(f"nftables table bridge {self.bridge.table}")
        return found + self._rules_left()

    def _tear_down(self, client: docker.DockerClient, interrupted: bool) -> None:
        self._freeze_apps(settle=not interrupted)
        for pod in self.pods.values():
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
            self._swept = not self.removed.failures
        except ENGINE_ERRORS as exc:
            self.say(f"clean-up failed: {exc}; `tcpscen clean` removes what is left")
        for pod in self.pods.values():
            pod.join_followers()
        if self.files is not None:
            self.files.close()
            self.files = None

    def _new_file(self, name: str, uid: int, gid: int) -> Path:
        """A file a container writes (a capture), made here before it starts and mounted alone:
        tcpdump (unprivileged) can write that one file and nothing else of the run directory."""
        assert self.files is not None
        return self.files.create_for(name, uid, gid)
