"""One simulated machine: a host container that owns the network namespace (address, MAC,
sysctls, and the capture as its main process), and the app container that joins it.

Killing the app leaves the namespace and its capture alive, so the kernel's FIN or RST is recorded.

Over 400 lines on purpose: the two containers share one lifecycle (boot, cable, power off and on,
teardown) and one state (which boot, which files, which networks), and every fault acts on both;
split, each half would need the other's state.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.models.networks import Network

from orchestrator.backend.base import LineSink
from orchestrator.backend.docker import labels, limits
from orchestrator.backend.docker.app import OBSERVER_PATH, ProgramApp, ProgramRun, start_program
from orchestrator.backend.docker.engine import ENGINE_ERRORS, engine_error
from orchestrator.backend.docker.readiness import LogLine
from orchestrator.backend.docker.routes import set_default_routes
from orchestrator.backend.docker.sampler import samples_name, start_sampler
from orchestrator.capture import tcpdump as capture
from orchestrator.interrupts import shielded
from orchestrator.rundir import invoking_user
from orchestrator.scenario.model import HostBase
from orchestrator.scenario.topology import Gateway

NOBODY = 65534


# The firewalls a `reject` fault sets, one per address family.
REJECT_TOOLS = ("iptables", "ip6tables")


DEFAULT_STOP_GRACE_S = 10.0  # docker stop's, and Compose's stop_grace_period's


@dataclass
class Pod:
    client: docker.DockerClient
    network: Network
    run_id: str
    scenario: str
    name: str
    spec: HostBase
    image: str
    new_file: Callable[[str, int, int], Path]  # (name, uid, gid) -> a new empty file for that user
    capture_user: str  # "uid:gid" tcpdump runs as: never root
    on_line: LineSink
    boots: int = 0
    host: Container | None = None
    app: Container | None = None
    paused: bool = False
    captures: list[str] = field(default_factory=list)
    capture_logs: list[str] = field(default_factory=list)
    agent_log: str = ""
    net_admin: bool = False  # only for hosts whose own firewall a fault changes (reject)
    app_config: str = ""
    ready_text: str | None = None  # what the app prints once it serves (servers: "listening")
    program: ProgramRun | None = None  # a user's program instead of the agent (app.py)
    program_apps: list[ProgramApp] = field(default_factory=list)
    extra_hosts: dict[str, str] = field(default_factory=dict)  # every host's name -> its address
    on_rewired: Callable[[str], None] | None = None  # told of a new veth (the wire's rules follow it)
    sample_interval_s: float | None = None  # set by sample_sockets: the sampler restarts at each boot
    socket_samples: list[str] = field(default_factory=list)  # sampler.py's files, one per boot
    # Every network the host is on (the first is `network`), with its addresses there, and its
    # default routes through a router (set from a helper: the host itself needs no NET_ADMIN).
    networks: dict[str, Network] = field(default_factory=dict)
    attach: dict[str, list[str]] = field(default_factory=dict)
    gateways: list[Gateway] = field(default_factory=list)
    _followers: list[threading.Thread] = field(default_factory=list)
    _files: dict[str, Path] = field(default_factory=dict)  # what boots write, made in the run directory
    cabled_at: float | None = None  # when reconnect last put the cables in: the kernel answers from then

    def boot(self) -> None:
        """Create the host container and wait until its capture listens (before any SYN can pass)."""
        self.boots += 1
        nets = self.networks or {"default": self.network}
        attach = self.attach or {"default": [str(self.spec.address)]}
        first = next(iter(nets))
        for name, (uid, gid) in self.boot_files().items():
            if name not in self._files:  # one made at an earlier boot is mounted again
                self._files[name] = self.new_file(name, uid, gid)
        volumes = {
            str(self._files[name]): {"bind": f"{capture.RUN_DIR_MOUNT}/{name}", "mode": "rw"}
            for name in self.boot_files()
        }
        try:
            with shielded():  # an interrupt waits until the object exists and is known
                self.host = self.client.containers.create(
                    self.image,
                    self.main_command(),
                    name=f"tcpscen-{self.run_id}-{self.name}-{self.boots}",
                    hostname=self.name,
                    user=self.main_user(),
                    # An init as PID 1 passes SIGINT on: tcpdump as PID 1 would ignore one that
                    # lands before it set its handler, and teardown would wait out its timeout.
                    init=True,
                    **limits.HOST,
                    network=str(nets[first].name),
                    mac_address=self.spec.effective_mac,
                    networking_config={
                        str(nets[first].name): self.client.api.create_endpoint_config(
                            ipv4_address=_v4(attach[first]), ipv6_address=_v6(attach[first])
                        )
                    },
                    sysctls={**self.kernel_sysctls(), **{k: str(v) for k, v in self.spec.sysctls.items()}},
                    cap_drop=["ALL"],
                    cap_add=self.capabilities(),
                    # Programs name their peers (`nc server 8000`); the app shares this /etc/hosts.
                    extra_hosts=self.extra_hosts,
                    # Each file the host writes, made here and mounted alone (boot_files).
                    volumes=volumes,
                    labels=labels.for_run(self.run_id, self.scenario, host=self.name, part="host"),
                )
                # The other networks before the start, so every interface exists when it runs.
                for name, net in nets.items():
                    if name != first:
                        net.connect(self.host, ipv4_address=_v4(attach[name]), ipv6_address=_v6(attach[name]))
                self.captures.extend(self.boot_captures())
                # A reboot: the peer is still sending, and the fresh kernel answers at once (an
                # RST) as soon as its interface is up: the cable goes in only once the capture
                # listens, or that first answer is missing from the new capture.
                cabled_later = self.boots > 1 and self.cable_after_boot()
                if cabled_later:
                    for net in nets.values():
                        net.disconnect(self.host)
                self.host.start()
        except ENGINE_ERRORS as exc:
            raise engine_error(exc, f"starting host {self.name}") from None
        LogLine(self.main_ready_text()).wait(self.host, f"the capture on {self.name}")
        self.before_cable()
        try:
            if cabled_later:
                self.reconnect()  # and its routes, and the wire's rules for its new veths
            else:
                self._route()
        except ENGINE_ERRORS as exc:
            raise engine_error(exc, f"connecting host {self.name}") from None
        if self.sample_interval_s is not None:
            self._start_sampler()

    def sample_sockets(self, interval_s: float) -> None:
        """Sample this kernel's sockets from now on, and again from each power on (a new kernel)."""
        self.sample_interval_s = interval_s
        if self.host is not None:
            self._start_sampler()

    def _start_sampler(self) -> None:
        assert self.host is not None and self.sample_interval_s is not None
        try:
            name = start_sampler(self.host, self.name, self.boots, self.capture_user, self.sample_interval_s)
        except ENGINE_ERRORS as exc:
            raise engine_error(exc, f"starting the socket sampler on {self.name}") from None
        self.socket_samples.append(name)

    # What makes this host (a router overrides them: router.RouterPod).
    def main_command(self) -> list[str]:
        return capture.tcpdump_command(capture.pcap_name(self.name, self.boots))

    def main_user(self) -> str:
        return self.capture_user

    def main_ready_text(self) -> str:
        return capture.READY_TEXT

    def boot_captures(self) -> list[str]:
        return [capture.pcap_name(self.name, self.boots)]

    def boot_files(self) -> dict[str, tuple[int, int]]:
        """The files this boot writes into the run directory, each with its writer's uid and gid:
        its capture, and the socket sampler's (sampler.py)."""
        writer = ids_of(self.capture_user)
        return {name: writer for name in [*self.boot_captures(), samples_name(self.name, self.boots)]}

    def before_cable(self) -> None:
        """What must run in the new kernel before its cables carry anything (a router's rules)."""

    def cable_after_boot(self) -> bool:
        """Whether a reboot's cables go in once the capture listens (a router's captures need
        their interfaces from the start)."""
        return True

    def capabilities(self) -> list[str]:
        # NET_RAW for the capture (tcpdump holds it as a file capability); NET_ADMIN only
        # where a fault rewrites this host's own firewall.
        return ["NET_RAW", "NET_ADMIN"] if self.net_admin else ["NET_RAW"]

    def kernel_sysctls(self) -> dict[str, str]:
        if not any(":" in a for addresses in self.attach.values() for a in addresses):
            # IPv6 off: its link-local chatter would only add noise to the captures.
            return {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
        # IPv6 on, without duplicate address detection: the first SYN must not wait for it.
        return {
            "net.ipv6.conf.all.disable_ipv6": "0",
            "net.ipv6.conf.all.accept_dad": "0",
            "net.ipv6.conf.default.accept_dad": "0",
        }

    def _route(self) -> None:
        if self.gateways and self.host is not None:
            set_default_routes(self.client, self.image, self.host, self.gateways, self.run_id, self.scenario)

    def start_app(self, config_json: str) -> None:
        assert self.host is not None, "boot() first"
        self.app_config = config_json
        if self.program is not None:
            self._start_program(self.program)
            return
        try:
            with shielded():  # an interrupt waits until the object exists and is known
                self.app = self.client.containers.create(
                    self.image,
                    ["python3", "/opt/tcpscen/agent.py", config_json],
                    name=f"tcpscen-{self.run_id}-{self.name}-app-{len(self._followers) + 1}",
                    network_mode=f"container:{self.host.id}",
                    user="65534:65534",  # nobody: the agent needs no privilege at all
                    cap_drop=["ALL"],
                    **limits.for_app(self.spec.limits),
                    labels=labels.for_run(self.run_id, self.scenario, host=self.name, part="app"),
                )
                self.app.start()
        except ENGINE_ERRORS as exc:
            raise engine_error(exc, f"starting the agent on {self.name}") from None
        follower = threading.Thread(
            target=self._follow, args=(self.app,), daemon=True, name=f"follow-{self.name}"
        )
        follower.start()
        self._followers.append(follower)
        if self.ready_text:
            self.wait_app_ready(self.ready_text)

    def _start_program(self, run: ProgramRun) -> None:
        assert self.host is not None
        n = len(self.program_apps) + 1
        try:
            with shielded():  # an interrupt waits until the object exists and is known
                app = start_program(
                    self.client,
                    run,
                    self.host,
                    name=f"tcpscen-{self.run_id}-{self.name}-app-{n}",
                    host_name=self.name,
                    labels=labels.for_run(self.run_id, self.scenario, host=self.name, part="app"),
                    new_file=self.new_file,
                    limits=limits.for_app(self.spec.limits),
                    trace_name=f"{self.name}.syscalls.txt" if n == 1 else f"{self.name}.syscalls.{n}.txt",
                    on_line=self.on_line,
                )
                self.app = app.container
                self.program_apps.append(app)
        except ENGINE_ERRORS as exc:
            raise engine_error(exc, f"starting the {run.source} on {self.name}") from None
        run.ready.wait(app.container, self.host, f"the {run.source} on {self.name}")

    def wait_app_ready(self, text: str) -> None:
        assert self.app is not None
        LogLine(text).wait(self.app, f"the agent on {self.name}")

    def app_running(self) -> bool:
        if self.program_apps:
            return self.program_apps[-1].running()
        return any(t.is_alive() for t in self._followers)

    def _follow(self, app: Container) -> None:
        buffer = b""
        try:
            for chunk in app.logs(stream=True, follow=True, stdout=True, stderr=False):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self.on_line(self.name, line.decode(errors="replace"))
        except ENGINE_ERRORS:
            pass  # the container went away under us (teardown, engine trouble): the run notices elsewhere
        if buffer:
            self.on_line(self.name, buffer.decode(errors="replace"))

    # The controls faults use (backend.base.Host). Each is one SDK call; the caller records the time.
    def disconnect(self, network: str | None = None) -> None:
        assert self.host is not None
        for net in self._chosen(network).values():
            net.disconnect(self.host, force=True)

    def reconnect(self, network: str | None = None) -> None:
        assert self.host is not None
        # The MAC is container config, so it comes back with the address: the peer's ARP cache stays right.
        attach = self.attach or {"default": [str(self.spec.address)]}
        for name, net in self._chosen(network).items():
            net.connect(self.host, ipv4_address=_v4(attach[name]), ipv6_address=_v6(attach[name]))
        self.cabled_at = time.time()
        self._route()  # the default route went with the interface
        if self.on_rewired is not None:
            self.on_rewired(self.name)

    def _chosen(self, network: str | None) -> dict[str, Network]:
        nets = self.networks or {"default": self.network}
        if network is None:
            return nets
        if network not in nets:
            raise RuntimeError(f"{self.name} is not on network {network!r} (it is on {', '.join(nets)})")
        return {network: nets[network]}

    def signal_app(self, signal: str) -> None:
        assert self.app is not None
        if signal == "SIGSTOP" and self._traced():
            # PID 1 is then the observer's shell: SIGSTOP would stop it, not the program (measured:
            # the program went on echoing), and it cannot trap SIGSTOP to pass it on.
            done = self.app.exec_run(["/bin/sh", OBSERVER_PATH, "forward", "STOP"])
            if done.exit_code != 0:
                raise RuntimeError(f"could not stop {self.name}'s program: {done.output!r}")
            return
        self.app.kill(signal=signal)

    def _traced(self) -> bool:
        """Whether the app is a program under the observer's strace (its PID 1 the shell)."""
        if not self.program_apps or self.program_apps[-1].trace is None:
            return False
        with contextlib.suppress(OSError):
            return not self.program_apps[-1].trace.read_text()[:64].startswith("# no strace")
        return False

    def pause_app(self) -> None:
        assert self.app is not None
        self.app.pause()
        self.paused = True

    def unpause_app(self) -> None:
        assert self.app is not None
        self.app.unpause()
        self.paused = False

    def stop_app(self, grace_s: float | None) -> None:
        assert self.app is not None
        if grace_s is None:  # the step gave none: the Compose service's, else docker stop's
            own = self.program.stop_grace_s if self.program is not None else None
            grace_s = own if own is not None else DEFAULT_STOP_GRACE_S
        self.app.stop(timeout=max(0, round(grace_s)))

    def restart_app(self) -> None:
        """A new process with the same program; the old container is kept for its logs until teardown."""
        self.collect_agent_log()
        if self.app is not None:
            self.app.reload()
            if self.app.status in ("running", "paused"):
                self.app.kill()
        self.start_app(self.app_config)

    def power_off(self) -> float:
        """Cable first, so the dying kernel's FIN or RST cannot escape; then the app and the kernel."""
        if self.host is None:
            raise RuntimeError(f"{self.name} is off already")
        for net in (self.networks or {"default": self.network}).values():
            with contextlib.suppress(docker.errors.APIError):
                net.disconnect(self.host, force=True)
        cut = time.time()
        if self.app is not None:
            self.collect_agent_log()
            with contextlib.suppress(docker.errors.APIError):
                self.app.kill()
        self.stop_capture()
        for container in (self.app, self.host):
            if container is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
        self.app = self.host = None
        self.paused = False
        return cut

    def power_on(self) -> float:
        """Same address, same MAC, fresh kernel state, a new capture file, and the same program.
        When its cables went in: the fresh kernel answers from then, while its app starts
        (measured: its RST to the peer's retransmission 0.14 s before redis-server was ready)."""
        self.check_off()
        self.cabled_at = None
        self.boot()
        cabled = self.cabled_at if self.cabled_at is not None else time.time()
        if self.on_rewired is not None:
            self.on_rewired(self.name)
        self.start_app(self.app_config)
        return cabled

    def check_off(self) -> None:
        """A power on needs the host off: booting it while on would put a second host container
        with the same address and MAC beside the first, both kernels answering."""
        if self.host is not None:
            raise RuntimeError(f"{self.name} is on: power it off first")

    def exec_root(self, command: list[str]) -> str:
        """Run a tool in this host's namespace (iptables, ss), with only the host container's capabilities."""
        assert self.host is not None
        code, out = self.host.exec_run(command, user="root")
        text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
        if code != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed on {self.name} (exit {code}): {text.strip()[:300]}"
            )
        return text

    def addresses(self) -> list[str]:
        """Every address of this host, on every network it is on."""
        attach = self.attach or {"default": [str(self.spec.address)]}
        return [a for addresses in attach.values() for a in addresses]

    def iflinks(self) -> dict[str, int]:
        """Each of this host's addresses -> the ifindex, in the machine's namespace, of the wire
        side of the interface that has it (eth0, eth1 after a reconnect: found by address).
        Empty when the host is disconnected from everything."""
        found: dict[str, int] = {}
        for line in self.exec_root(["ip", "-o", "addr", "show"]).splitlines():
            fields = line.split()
            if len(fields) < 4 or fields[2] not in ("inet", "inet6"):
                continue
            address = fields[3].split("/")[0]
            if address in self.addresses():
                iface = fields[1].split("@")[0]
                found[address] = int(self.exec_root(["cat", f"/sys/class/net/{iface}/iflink"]).strip())
        return found

    def reject(self) -> None:
        # INPUT: tcpdump sees the segment arrive (it captures before netfilter), then the RST go out.
        # iptables is IPv4 only: an IPv6 host's segments need ip6tables' own rule, or none is rejected.
        for tool in REJECT_TOOLS:
            self.exec_root([tool, "-I", "INPUT", "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"])

    def unreject(self) -> None:
        if self.net_admin and self.host is not None:
            for tool in REJECT_TOOLS:
                self.exec_root([tool, "-F", "INPUT"])

    def sockets(self) -> str:
        """ss's view of this kernel's TCP sockets, with timers (keepalive, retransmission)."""
        if self.host is None:
            return ""
        try:
            table = self.exec_root(["ss", "-tanoi"])
        except (RuntimeError, *ENGINE_ERRORS) as exc:
            return f"# ss failed: {exc}\n"
        try:
            # The kernel's own TCP counters, after the table (verdict.counters reads them).
            return table + "\n# nstat\n" + self.exec_root(["nstat", "-asz"])
        except (RuntimeError, *ENGINE_ERRORS):
            return table

    def collect_agent_log(self) -> None:
        """The agent's stderr (a traceback, if it crashed), kept before the container goes."""
        if self.app is None or self.program is not None:
            return
        with contextlib.suppress(*ENGINE_ERRORS):
            self.agent_log += self.app.logs(stdout=False, stderr=True).decode(errors="replace")

    def stop_capture(self, timeout_s: float = 3.0) -> None:
        """SIGINT lets tcpdump flush and print its counts; the namespace goes with it. If it has
        not stopped in time (a SIGINT that came before it could handle one), SIGKILL: with -U every
        packet is in the file already, only the counts are lost."""
        if self.host is None:
            return
        with contextlib.suppress(*ENGINE_ERRORS):  # already gone
            self.host.kill(signal="SIGINT")
            try:
                self.host.wait(timeout=timeout_s)
            except requests.exceptions.RequestException:  # the wait timed out
                self.host.kill()
                self.host.wait(timeout=timeout_s)
        with contextlib.suppress(*ENGINE_ERRORS):
            self.capture_logs.append(self.host.logs(stdout=False, stderr=True).decode(errors="replace"))

    def kept_files(self) -> dict[str, str]:
        """Files this host kept inside its containers, read out before they went: suffix -> text."""
        return {}

    def join_followers(self, timeout_s: float = 5.0) -> None:
        for follower in self._followers:
            follower.join(timeout_s)
        for app in self.program_apps:
            app.join(timeout_s)

    @property
    def app_log(self) -> str:
        """A program's stdout and stderr, each line with the engine's timestamp, every start in turn."""
        return "".join(app.log_text() for app in self.program_apps)


def capture_ids() -> tuple[int, int]:
    """Who tcpdump runs as (it holds NET_RAW as a file capability, so any uid can capture): the
    invoking user (under sudo, the sudo user), whose the pcaps then are from the first packet;
    when that is root itself, nobody, so the capture never runs as root."""
    uid, gid = invoking_user()
    return (uid, gid) if uid != 0 else (NOBODY, NOBODY)


def ids_of(user: str) -> tuple[int, int]:
    uid, gid = user.split(":")
    return int(uid), int(gid)


def _v4(addresses: list[str]) -> str | None:
    return next((a for a in addresses if ":" not in a), None)


def _v6(addresses: list[str]) -> str | None:
    return next((a for a in addresses if ":" in a), None)
