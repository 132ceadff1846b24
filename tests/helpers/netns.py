"""Three network namespaces, a — w — b, for checking facts against the real kernel.

The endpoints `a` (client side) and `b` (server side) each have one veth link to `w`, which
*routes* between two /30 subnets of 10.199.0.0/16. Routing rather than bridging, because:
the ICMP errors of `reject_icmp` then come from a real router address, as on a real network;
a fault is one nftables rule in `w`'s forward hook, which sees only forwarded IP, so ARP and
the neighbour entries on each link are never disturbed by a cut; and nothing needs
br_netfilter. Faults live in `w` so that both endpoint captures tell the truth: tcpdump sees
egress after the local firewall, so a drop in a sender's own namespace would hide its
retransmissions from its own capture.

Every object lives inside the namespaces (the veths are created in `w` with their peer moved
straight into the endpoint), so nothing touches the root namespace, and teardown is deleting
three namespaces. Names are `tcpscen-t-<random>-{a,w,b}`: `find_leftovers()` lists what a
crashed run left. Processes (tcpdump, agents, commands) are stopped by their PID.

A new namespace starts from the kernel's default sysctls, whatever the host's are; IPv6 is
turned off before the links exist, so no link-local address and no DAD delay the first SYN.

This kernel has no sch_netem: for delay, jitter, reordering and duplication, `relay()` makes
`relay.py` (a user-space netem on AF_PACKET sockets) w's forwarder instead of its kernel.

One responsibility (the harness: namespaces, processes, faults, the result), hence one file of
about 500 lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from orchestrator.capture.tcpdump import BUFFER_KIB, dropped_by_kernel

PREFIX = "tcpscen-t-"
ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "images" / "agent" / "agent.py"
RELAY = Path(__file__).resolve().parent / "relay.py"

# Addresses: a's link 10.199.1.0/30, b's link 10.199.2.0/30 (never outside 10.199.0.0/16).
A_ADDR, W_A_ADDR = "10.199.1.1", "10.199.1.2"
B_ADDR, W_B_ADDR = "10.199.2.1", "10.199.2.2"
PREFIX_LEN = 30
SERVER_PORT = 7000
# Interface names inside each namespace: a and b see "eth0", w sees "to-a" and "to-b".
W_IFACE = {"a": "to-a", "b": "to-b"}

Role = Literal["a", "w", "b"]
ENDPOINTS: tuple[Role, Role] = ("a", "b")
Direction = Literal["a->b", "b->a"]
NFT_TABLE = "tcpscen"
COMMAND_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 5.0  # a server's `listening`


def run(argv: Sequence[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run a short command; its stdout. A failure raises with the command's own stderr."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def find_leftovers() -> list[str]:
    """Namespaces with our prefix: what a crashed or killed run left, or what a run going on uses."""
    names = (line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip())
    return sorted(name for name in names if name.startswith(PREFIX))


def remove_leftovers() -> list[str]:
    """Kill the processes inside our namespaces (by PID) and delete them. By hand only, when no
    other run is going on: a concurrent run's namespaces carry the same prefix."""
    removed = find_leftovers()
    for name in removed:
        for pid in run(["ip", "netns", "pids", name], check=False).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        run(["ip", "netns", "del", name], check=False)
    return removed


@dataclass(frozen=True)
class Event:
    """One JSON line an app printed: the agent's events carry a wall-clock `t`."""

    t: float  # epoch seconds, same clock as the pcap timestamps; reading time for non-JSON lines
    name: str
    fields: dict[str, Any]


class App:
    """A process in a namespace whose stdout lines are collected as `Event`s by a reader thread."""

    def __init__(self, name: str, ns: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self._log = log.open("w")
        self._events: list[Event] = []
        self._changed = threading.Condition()
        argv = ["ip", "netns", "exec", ns, *argv]
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, name=f"app-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                raw = None
            if not isinstance(raw, dict):  # a command that is not the agent: keep its text
                raw = {"t": time.time(), "event": "line", "text": line.rstrip("\n")}
            t = float(raw.pop("t", time.time()))
            event = Event(t=t, name=str(raw.pop("event", "line")), fields=raw)
            with self._changed:
                self._events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def events(self) -> list[Event]:
        with self._changed:
            return list(self._events)

    def wait_for(self, name: str, timeout: float) -> Event:
        """The first event called `name`, waiting for it; raises if the app exits or time runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self._events:
                    if event.name == name:
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or (self._proc.poll() is not None and not self._reader.is_alive()):
                    seen = [e.name for e in self._events]
                    raise TimeoutError(f"{self.name}: no {name!r} event within {timeout} s (saw {seen})")
                self._changed.wait(min(left, 0.1))

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the process, by its PID (`ip netns exec` execs the command itself)."""
        self._proc.send_signal(sig)

    def stop(self) -> None:
        """SIGTERM by PID (the agent then reports `exit`), SIGKILL if it lingers."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(timeout=3)
        self._log.close()


class Capture:
    """tcpdump in a namespace, writing each packet as it comes; started once it is listening."""

    def __init__(self, ns: str, iface: str, path: Path, snaplen: int | None = None) -> None:
        self.path = path
        self._log_path = path.with_suffix(".capture.log")
        # The product's ring (tcpdump's 2 MiB default lost 4 of 111 packets of a 100 KB burst on a
        # loaded machine, and nothing in the pcap says so); what was lost anyway is in `dropped`.
        ring = ["-B", str(BUFFER_KIB)]
        tcpdump = ["tcpdump", "-i", iface, "-U", "--immediate-mode", "-n", *ring, "-w", str(path)]
        if snaplen is not None:  # headers only: a big capture of many packets
            tcpdump[1:1] = ["-s", str(snaplen)]
        self.dropped = 0
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *tcpdump],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._stderr: list[str] = []
        # Traffic before the "listening on" line would be lost: wait for it (tcpdump prints it at once).
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line)
            if "listening on" in line:
                break
        if not any("listening on" in line for line in self._stderr):
            self.stop()
            raise RuntimeError(f"tcpdump in {ns} exited before listening: {''.join(self._stderr)}")

    def stop(self) -> None:
        """SIGINT by PID so tcpdump flushes and closes the file; its counts go to the .capture.log."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            _, rest = self._proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, rest = self._proc.communicate()
        log = "".join(self._stderr) + (rest or "")
        self._log_path.write_text(log)
        self.dropped = dropped_by_kernel(log)


@dataclass(frozen=True)
class Fault:
    """A change to w's forward chain; the rule is in force from some time in [before, after]."""

    kind: str  # cut, cut_one_way, reject_icmp, rule, heal
    detail: str
    before: float
    after: float


@dataclass
class CaseResult:
    """Everything one case left: what the verdict engine gets, and what the facts are read from."""

    name: str
    directory: str
    pcaps: dict[str, str]  # capture name -> file path
    events: dict[str, list[Event]]  # app name -> its events
    faults: list[Fault]
    ss: dict[str, str]  # role -> `ss -tanoi` at the end (before teardown)
    counters: dict[str, dict[str, int]]  # role -> nonzero Tcp/TcpExt counters at the end
    sysctls: dict[str, dict[str, str]]  # role -> what was set (the rest are kernel defaults)
    apps: dict[str, list[str]]  # app name -> argv (the agent's JSON config holds its socket options)
    settings: dict[str, Any] = field(default_factory=dict)  # the case's own parameters
    marks: dict[str, float] = field(default_factory=dict)  # named moments (e.g. capture_stopped)
    dropped: dict[str, int] = field(default_factory=dict)  # capture name -> packets tcpdump lost
    kernel: str = field(default_factory=lambda: os.uname().release)

    def event(self, app: str, name: str) -> Event | None:
        """The app's first `name` event while the captures ran (not its teardown's)."""
        end = self.marks.get("captures_stopped", float("inf"))
        return next((e for e in self.events.get(app, []) if e.name == name and e.t <= end), None)

    def fault(self, kind: str) -> Fault | None:
        return next((f for f in self.faults if f.kind == kind), None)

    def dump(self) -> Path:
        path = Path(self.directory) / "meta.json"
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> CaseResult:
        raw = json.loads(Path(path).read_text())
        raw["events"] = {k: [Event(**e) for e in v] for k, v in raw["events"].items()}
        raw["faults"] = [Fault(**f) for f in raw["faults"]]
        return cls(**raw)


def parse_counters(text: str) -> dict[str, int]:
    """/proc/net/snmp and /proc/net/netstat: header/value line pairs; the Tcp and TcpExt ones."""
    counters: dict[str, int] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        group, _, names = header.partition(":")
        if group not in ("Tcp", "TcpExt"):
            continue
        for key, value in zip(names.split(), values.partition(":")[2].split(), strict=False):
            if value.lstrip("-").isdigit() and int(value) != 0:
                counters[f"{group}{key}"] = int(value)
    return counters


class Topology:
    """Use as `with Topology(out_dir) as topo:`; everything is removed on exit, even on failure."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        base = PREFIX + secrets.token_hex(4)
        self.ns: dict[Role, str] = {"a": f"{base}-a", "w": f"{base}-w", "b": f"{base}-b"}
        self.sysctls: dict[str, dict[str, str]] = {"a": {}, "w": {}, "b": {}}
        self.faults: list[Fault] = []
        self._captures: dict[str, Capture] = {}
        self.dropped: dict[str, int] = {}  # capture name -> packets tcpdump lost, once stopped
        self._apps: dict[str, App] = {}
        self._created: list[str] = []

    def __enter__(self) -> Topology:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _build(self) -> None:
        for role, name in self.ns.items():
            run(["ip", "netns", "add", name])
            self._created.append(name)
            # Before any link exists, so the veths never get an IPv6 address (no DAD, no noise).
            self.sysctl(
                role, **{"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}
            )
            run(["ip", "-n", name, "link", "set", "lo", "up"])
        w = self.ns["w"]
        links: tuple[tuple[Role, str, str], ...] = (("a", A_ADDR, W_A_ADDR), ("b", B_ADDR, W_B_ADDR))
        for end, addr, w_addr in links:
            peer = self.ns[end]
            iface = W_IFACE[end]
            run(["ip", "-n", w, "link", "add", iface, "type", "veth", "peer", "name", "eth0", "netns", peer])
            run(["ip", "-n", w, "addr", "add", f"{w_addr}/{PREFIX_LEN}", "dev", iface])
            run(["ip", "-n", peer, "addr", "add", f"{addr}/{PREFIX_LEN}", "dev", "eth0"])
            run(["ip", "-n", w, "link", "set", iface, "up"])
            run(["ip", "-n", peer, "link", "set", "eth0", "up"])
            run(["ip", "-n", peer, "route", "add", "default", "via", w_addr])
        self.sysctl("w", **{"net.ipv4.ip_forward": 1})
        chain = "{ type filter hook forward priority filter; policy accept; }"
        self._nft(f"add table inet {NFT_TABLE}\nadd chain inet {NFT_TABLE} forward {chain}\n")

    def close(self) -> None:
        """Stop captures first (so the apps' exit leaves no trace in them), then apps, then namespaces."""
        # Best effort: a failing stop must not keep the namespaces alive.
        for capture in self._captures.values():
            with contextlib.suppress(Exception):
                capture.stop()
        for app in self._apps.values():
            with contextlib.suppress(Exception):
                app.stop()
        for name in self._created:
            run(["ip", "netns", "del", name], check=False)
        self._created = []

    # --- configuration -------------------------------------------------------------------

    def sysctl(self, role: Role, **values: object) -> None:
        """`sysctl -w` in one namespace; keys with dots are passed as **{"net.ipv4.x": v}."""
        pairs = [f"{key}={value}" for key, value in values.items()]
        run(["ip", "netns", "exec", self.ns[role], "sysctl", "-qw", *pairs])
        self.sysctls[role].update({key: str(value) for key, value in values.items()})

    def read_sysctl(self, role: Role, key: str) -> str:
        return run(["ip", "netns", "exec", self.ns[role], "sysctl", "-n", key]).strip()

    def ip(self, role: Role, *args: str) -> None:
        run(["ip", "-n", self.ns[role], *args])

    # --- processes -----------------------------------------------------------------------

    def capture(
        self, role: Role, iface: str = "any", name: str | None = None, snaplen: int | None = None
    ) -> Path:
        name = name or role
        path = self.out_dir / f"{name}.pcap"
        self._captures[name] = Capture(self.ns[role], iface, path, snaplen)
        return path

    def stop_capture(self, name: str) -> None:
        self._stop_capture(name)

    def command(self, role: Role, name: str, argv: Sequence[str]) -> App:
        """Any command in a namespace (e.g. a raw-socket snippet the agent cannot express)."""
        app = App(name, self.ns[role], argv, self.out_dir / f"{name}.log")
        self._apps[name] = app
        return app

    def agent(self, role: Role, name: str, config: dict[str, Any]) -> App:
        """The project's agent; a server is returned once it reports `listening`."""
        app = self.command(role, name, ["python3", str(AGENT), json.dumps({"host": name, **config})])
        if config.get("role") == "server":
            app.wait_for("listening", READY_TIMEOUT_S)
        return app

    # --- faults, all in w's forward chain ----------------------------------------------------

    def _nft(self, script: str) -> None:
        self.nft_in("w", script)

    def nft_in(self, role: Role, script: str) -> None:
        """An nft script in one namespace (a host's own firewall, where `role` is a or b)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns[role], "nft", "-f", "-"],
            input=script,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft failed: {done.stderr.strip()}\n{script}")

    def rule(self, rule: str, kind: str = "rule") -> Fault:
        """Add one nft rule to w's forward chain, e.g. 'iifname "to-a" tcp flags & syn != syn drop'."""
        before = time.time()
        self._nft(f"add rule inet {NFT_TABLE} forward {rule}\n")
        fault = Fault(kind=kind, detail=rule, before=before, after=time.time())
        self.faults.append(fault)
        return fault

    def cut(self, one_way: Direction | None = None) -> Fault:
        """Drop everything w forwards (both ways), or only one direction."""
        if one_way is None:
            return self.rule("drop", kind="cut")
        source = one_way.split("->")[0]
        return self.rule(f'iifname "{W_IFACE[source]}" drop', kind="cut_one_way")

    def reject_icmp(self, code: str = "host-unreachable", direction: Direction = "a->b") -> Fault:
        """w answers each forwarded packet of `direction` with an ICMP error from its own address."""
        source = direction.split("->")[0]
        return self.rule(
            f'iifname "{W_IFACE[source]}" meta l4proto tcp reject with icmp type {code}', kind="reject_icmp"
        )

    def mtu_black_hole(self, mtu: int, toward: Role = "b") -> Fault:
        """Lower w's MTU toward one side and drop the ICMP fragmentation-needed w itself sends
        (an output chain: the forward hook never sees it): large DF packets vanish, small pass."""
        before = time.time()
        self.ip("w", "link", "set", W_IFACE[toward], "mtu", str(mtu))
        chain = "{ type filter hook output priority filter; policy accept; }"
        self._nft(
            f"add chain inet {NFT_TABLE} output {chain}\n"
            f"add rule inet {NFT_TABLE} output icmp type destination-unreachable icmp code frag-needed drop\n"
        )
        fault = Fault(
            kind="mtu_black_hole", detail=f"mtu {mtu} toward {toward}", before=before, after=time.time()
        )
        self.faults.append(fault)
        return fault

    def masquerade(self, toward: Role = "b", *, random: bool = False) -> None:
        """w NATs what leaves toward `toward` to its own address there (a home router, a cloud
        NAT); `random` gives each new mapping a random port instead of keeping the client's."""
        chain = "{ type nat hook postrouting priority srcnat; }"
        how = "masquerade random" if random else "masquerade"
        self._nft(
            f"add chain inet {NFT_TABLE} postrouting {chain}\n"
            f'add rule inet {NFT_TABLE} postrouting oifname "{W_IFACE[toward]}" {how}\n'
        )

    def heal(self) -> Fault:
        before = time.time()
        self._nft(f"flush chain inet {NFT_TABLE} forward\n")
        fault = Fault(kind="heal", detail="flush", before=before, after=time.time())
        self.faults.append(fault)
        return fault

    def relay(self, phases: list[dict[str, dict[str, Any]]], seed: int = 1) -> App:
        """Forward through `relay.py` (delay, jitter, reordering, duplication, random loss; no
        sch_netem on this kernel) instead of w's kernel, whose forwarding is turned off: nft
        rules in w's forward chain then see nothing. The app's SIGUSR1 moves to the next phase."""
        self.sysctl("w", **{"net.ipv4.ip_forward": 0})
        macs: dict[str, str] = {role: self._mac(role, "eth0") for role in ENDPOINTS}
        macs.update({iface: self._mac("w", iface) for iface in W_IFACE.values()})
        config = {"macs": macs, "seed": seed, "phases": phases}
        app = self.command("w", "relay", ["python3", str(RELAY), json.dumps(config)])
        app.wait_for("ready", READY_TIMEOUT_S)
        return app

    def _mac(self, role: Role, iface: str) -> str:
        return run(["ip", "netns", "exec", self.ns[role], "cat", f"/sys/class/net/{iface}/address"]).strip()

    # --- observation -----------------------------------------------------------------------

    def ss(self, role: Role) -> str:
        return run(["ip", "netns", "exec", self.ns[role], "ss", "-tanoi"])

    def counters(self, role: Role) -> dict[str, int]:
        """The namespace's TCP counters; a fresh namespace starts at zero, so these are the case's."""
        text = run(["ip", "netns", "exec", self.ns[role], "cat", "/proc/net/snmp", "/proc/net/netstat"])
        return parse_counters(text)

    def result(
        self, name: str, settings: dict[str, Any], marks: dict[str, float] | None = None
    ) -> CaseResult:
        """Snapshot ss and counters, stop captures and apps, and return (and dump) the result."""
        ss: dict[str, str] = {role: self.ss(role) for role in ENDPOINTS}
        counters: dict[str, dict[str, int]] = {role: self.counters(role) for role in ENDPOINTS}
        pcaps = {capture: str(self.out_dir / f"{capture}.pcap") for capture in self._captures}
        # Events after this moment (the apps' own teardown) are not part of the case.
        marks = {**(marks or {}), "captures_stopped": time.time()}
        self.close_processes()
        result = CaseResult(
            name=name,
            directory=str(self.out_dir),
            pcaps=pcaps,
            events={app_name: app.events for app_name, app in self._apps.items()},
            faults=list(self.faults),
            ss=ss,
            counters=counters,
            sysctls={k: dict(v) for k, v in self.sysctls.items() if v},
            apps={app_name: app.argv for app_name, app in self._apps.items()},
            settings=settings,
            marks=marks,
            dropped={k: v for k, v in self.dropped.items() if v},
        )
        result.dump()
        return result

    def _stop_capture(self, name: str) -> None:
        capture = self._captures.pop(name)
        capture.stop()
        self.dropped[name] = capture.dropped

    def close_processes(self) -> None:
        for capture in list(self._captures):
            self._stop_capture(capture)
        for app in self._apps.values():
            app.stop()
