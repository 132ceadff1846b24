"""A router host: a pod whose main process is the router supervisor (images/agent/middlebox.py)
instead of one tcpdump. It forwards between its networks (forwarding sysctls), does NAT and
connection tracking by an nftables ruleset made here from the scenario, captures each network
on its own interface (`nat.inside.pcap`, `nat.outside.pcap`), and logs conntrack's events.

It is the one host that runs as root inside its container, with NET_ADMIN (nft, conntrack) and
NET_RAW (the captures, forged segments) and nothing else; it runs no app.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.backend.docker.engine import ENGINE_ERRORS
from orchestrator.backend.docker.pod import Pod, ids_of
from orchestrator.backend.docker.readiness import poll
from orchestrator.scenario.middlebox import Nat
from orchestrator.scenario.model import RouterHost

READY_TEXT = "tcpscen router ready"
# What the supervisor keeps inside the container (it is root without DAC_OVERRIDE, so it cannot
# write files made for the capture user), read out before each stop: run-directory suffix -> path.
STATE_FILES = {
    "rules.nft": "/var/lib/tcpscen/rules.nft",
    "conntrack.log": "/var/lib/tcpscen/conntrack.log",
    "middlebox.jsonl": "/var/lib/tcpscen/middlebox.jsonl",
}
SUPERVISOR = "/opt/tcpscen/middlebox.py"


def router_pcap(host: str, network: str, boot: int) -> str:
    return f"{host}.{network}.pcap" if boot == 1 else f"{host}.{network}.boot{boot}.pcap"


# (host, IP version) -> that host's address of that version, for a DNAT target.
Resolve = Callable[[str, int], str | None]


def ruleset(
    spec: RouterHost, subnets: dict[str, list[str]], addresses: dict[str, list[str]], resolve: Resolve
) -> str:
    """The router's nftables ruleset. `subnets` and `addresses`: per network of the router, its
    subnets and the router's own addresses there (as the run really has them)."""
    forgotten = spec.conntrack.forgotten
    # A packet of a flow conntrack does not know (with nf_conntrack_tcp_loose=0: a mid-stream
    # segment) is "invalid". Counted always; dropped unless Linux's default picks it up.
    verdict = "accept" if forgotten == "loose" else "drop"
    lines = [
        "table inet tcpscen {",
        "  counter forgotten { }",
        "  counter new_flows { }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
        f'    ct state invalid counter name "forgotten" {verdict}',
        '    ct state new counter name "new_flows"',
        "  }",
        "  chain input {",
        "    type filter hook input priority filter; policy accept;",
        # A forgotten flow's packet to the router's own (NAT) address: silent, not the router's RST.
        f"    ct state invalid {verdict}",
        "  }",
        "}",
    ]
    for family, version in (("ip", 4), ("ip6", 6)):
        lines += _nat(spec.nat, family, version, subnets, addresses, resolve)
    return "\n".join(lines) + "\n"


def _nat(
    nat: Nat,
    family: str,
    version: int,
    subnets: dict[str, list[str]],
    addresses: dict[str, list[str]],
    resolve: Resolve,
) -> list[str]:
    def of_family(values: list[str]) -> list[str]:
        return [v for v in values if (":" in v) == (version == 6)]

    post = [
        f"    {family} daddr {subnet} masquerade{' random' if nat.random else ''}"
        for subnet in of_family(subnets.get(nat.masquerade, []) if nat.masquerade else [])
    ]
    pre: list[str] = []
    for pub in nat.publish:
        host, port = pub.target
        target = resolve(host, version)
        if target is None:
            continue
        shown = f"[{target}]:{port}" if version == 6 else f"{target}:{port}"
        for net in [pub.network] if pub.network else list(addresses):
            for own in of_family(addresses.get(net, [])):
                pre.append(f"    {family} daddr {own} tcp dport {pub.port} dnat to {shown}")
    if not post and not pre:
        return []
    return [
        f"table {family} tcpscen_nat {{",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        *pre,
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        *post,
        "  }",
        "}",
    ]


@dataclass
class RouterPod(Pod):
    spec_router: RouterHost | None = None
    rules: str = ""  # the ruleset text, loaded by the supervisor at each boot
    state: dict[str, str] = field(default_factory=dict)  # STATE_FILES' text, every boot in turn
    end_state: str = ""  # conntrack's table and nft's counters when the observation ended
    peers: dict[str, list[str]] | None = None  # the other hosts' addresses, for inject
    ports: dict[str, int] | None = None  # each app host's service port (a server's, a client's target)

    def main_command(self) -> list[str]:
        config = {
            "name": self.name,
            "rules": self.rules,
            "captures": [
                {"address": addresses[0], "pcap": router_pcap(self.name, net, self.boots)}
                for net, addresses in self.attach.items()
            ],
            "reset_both": self.spec_router is not None
            and self.spec_router.conntrack.forgotten == "reset-both",
            # A reboot's cables go in after the captures start: each waits for its interface.
            "wait_for_interfaces": self.boots > 1,
        }
        return ["python3", SUPERVISOR, "capture", json.dumps(config, separators=(",", ":"))]

    def boot_files(self) -> dict[str, tuple[int, int]]:
        """Its captures, one per network and boot: all it writes into the run directory."""
        writer = ids_of(self.capture_user)
        return {name: writer for name in self.boot_captures()}

    def stop_capture(self, timeout_s: float = 3.0) -> None:
        self.collect_state()
        super().stop_capture(timeout_s)

    def collect_state(self) -> None:
        """The supervisor's files, read out before the container goes (a reboot, the teardown);
        a log goes on after the last boot's, the ruleset is the last boot's."""
        if self.host is None:
            return
        for suffix, path in STATE_FILES.items():
            try:
                text = self.exec_root(["cat", path])
            except (RuntimeError, *ENGINE_ERRORS):
                continue  # the supervisor never got that far: nothing to keep
            self.state[suffix] = text if suffix == "rules.nft" else self.state.get(suffix, "") + text

    def kept_files(self) -> dict[str, str]:
        return dict(self.state)

    def cable_after_boot(self) -> bool:
        return True  # a rebooted router forwards nothing before its rules and captures are in place

    def boot(self) -> None:
        """The captures as the host's main process (the capture user, as on every host); the
        supervisor beside it as root (nft, conntrack, forged segments) with a gate that drops
        every packet before conntrack; the cables; and once every capture listens, the gate
        opens. Without it a rebooted router forwarded the peers' retransmissions un-NATed and
        uncaptured in the half second before its rules loaded."""
        super().boot()
        assert self.host is not None
        poll(self._all_listen, 15.0, f"the captures on {self.name}", self.host)
        self._ok(self.control({"op": "open"}))

    def before_cable(self) -> None:
        assert self.host is not None
        config = {**json.loads(self.main_command()[-1]), "gated": True}
        self.host.exec_run(["python3", SUPERVISOR, "serve", json.dumps(config)], user="root", detach=True)
        poll(self._answers, 15.0, f"the router supervisor on {self.name}", self.host)

    def _all_listen(self) -> bool:
        assert self.host is not None
        return self.host.logs(stdout=False, stderr=True).count(b"listening on") >= len(self.attach)

    def _answers(self) -> bool:
        try:
            return bool(self.control({"op": "ping"}).get("ok"))
        except (RuntimeError, ValueError):
            return False

    def main_ready_text(self) -> str:
        return READY_TEXT

    def boot_captures(self) -> list[str]:
        return [router_pcap(self.name, net, self.boots) for net in self.attach]

    def capabilities(self) -> list[str]:
        return ["NET_ADMIN", "NET_RAW"]

    def kernel_sysctls(self) -> dict[str, str]:
        out = {**super().kernel_sysctls(), "net.ipv4.ip_forward": "1"}
        if out.get("net.ipv6.conf.all.disable_ipv6") == "0":
            out["net.ipv6.conf.all.forwarding"] = "1"
        if self.spec_router is not None:
            out.update({k: str(v) for k, v in self.spec_router.conntrack.sysctls().items()})
        return out

    def control(self, command: dict[str, object]) -> dict[str, object]:
        """One command to the supervisor (inject, clamp, flush); its reply."""
        text = json.dumps(command, separators=(",", ":"))
        out = self.exec_root(["python3", SUPERVISOR, "ctl", text])
        reply: dict[str, object] = json.loads(out.strip().splitlines()[-1])
        return reply

    # The middlebox controls (backend.base.Middlebox).
    def flush_conntrack(self) -> None:
        self._ok(self.control({"op": "flush"}))

    def set_idle_timeout(self, seconds: int) -> None:
        self._ok(self.control({"op": "clamp", "seconds": seconds}))

    def inject(self, toward: str, flags: str, offset: int) -> str:
        addresses = (self.peers or {}).get(toward, [])
        port = (self.ports or {}).get(toward)
        if not addresses or port is None:
            raise RuntimeError(f"{toward} is no server or client this router can reach")
        last: dict[str, object] = {}
        for address in addresses:
            last = self.control(
                {"op": "inject", "to": address, "port": port, "flags": flags, "offset": offset}
            )
            if last.get("ok"):
                sent = last["sent"]
                assert isinstance(sent, dict)
                return (
                    f"{sent['src']}:{sent['sport']} -> {sent['dst']}:{sent['dport']} [{sent['flags']}] "
                    f"seq={sent['seq']} (expected {last['expected']}, offset {offset:+d})"
                )
        raise RuntimeError(str(last.get("error", "no reply")))

    @staticmethod
    def _ok(reply: dict[str, object]) -> None:
        if not reply.get("ok"):
            raise RuntimeError(str(reply.get("error", "the router supervisor refused")))

    def sockets(self) -> str:
        """A router has no sockets of its own: its conntrack table instead, and nft's counters."""
        if self.host is None:
            return ""
        parts = []
        for title, command in (
            ("conntrack -L", ["conntrack", "-L"]),
            ("nft list counters", ["nft", "list", "counters"]),
        ):
            try:
                parts.append(f"# {title}\n{self.exec_root(command)}")
            except (RuntimeError, *ENGINE_ERRORS) as exc:
                parts.append(f"# {title} failed: {exc}\n")
        self.end_state = "\n".join(parts)
        return self.end_state

    def start_app(self, config_json: str) -> None:
        raise RuntimeError(f"{self.name} is a router: it runs no app")

    def power_on(self) -> float:
        """A router's cables are in from its start (its captures need their interfaces)."""
        self.check_off()
        self.boot()
        return time.time()
