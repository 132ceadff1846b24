"""The wire between the hosts (`backend.base.Wire`): blackholes as nftables rules on the run's
bridge, set from a helper container in the host's network namespace (NET_ADMIN, nothing else).

Dropping on the bridge, between the two veths, is a cut that each side's capture reports truly:
the sender's capture shows what it sent, the receiver's shows nothing arriving. One table per
run, `bridge tcpscen_<run>`, so removing the run's rules is deleting its table.

A bridge-family table sees every bridge of the machine, so each rule names the blackholed host's
own bridge port (`iifname`/`oifname` of its veth), never just its address: another run on the
same addresses, or a table a killed run left, cannot touch anyone else's packets. (`meta ibrname`
would name the run's bridge, but kernels without NFT_BRIDGE_META refuse it: this one does.) A
host that gets a new veth (reconnect, power on) has its rules written again for it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import docker
import docker.errors
from docker.models.containers import Container

from orchestrator.backend.docker import labels, limits
from orchestrator.errors import EngineError
from orchestrator.interrupts import shielded
from orchestrator.scenario.model import Scenario

if TYPE_CHECKING:
    from orchestrator.backend.docker.pod import Pod

TABLE_PREFIX = "tcpscen_"


def table_name(run_id: str) -> str:
    return TABLE_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", run_id)


class Bridge:
    def __init__(
        self,
        client: docker.DockerClient,
        image: str,
        run_id: str,
        scenario: Scenario,
        pods: Mapping[str, Pod],
    ) -> None:
        self.client, self.image, self.run_id = client, image, run_id
        self.scenario = scenario  # as it runs (relocated): the hosts' addresses
        self.pods = pods
        self.table = table_name(run_id)
        self._helper: Container | None = None
        self._tables_made = False
        self._netem: dict[str, str] = {}
        self._holes: dict[str, set[str]] = {}  # host -> the ways blackholed: inbound, outbound
        self._losses: dict[str, tuple[int, set[str]]] = {}  # host -> (drop below, of 10000; the ways)

    def blackhole(self, host: str, direction: str) -> None:
        self._holes.setdefault(host, set()).update(_ways(direction))
        self._write_rules(host)

    def loss(self, host: str, fraction: float, direction: str) -> None:
        """A random share of the host's packets dropped on the wire (`numgen random`, no netem)."""
        self._losses[host] = (round(fraction * 10000), _ways(direction))  # 3% is < 300 of 10000
        self._write_rules(host)

    def rewired(self, host: str) -> None:
        """The host has new veths (reconnected, powered on): its blackhole and loss follow them."""
        if self._holes.get(host) or host in self._losses:
            self._write_rules(host)

    def _write_rules(self, host: str) -> None:
        chain = self._host_chain(host)
        self._nft(f"flush chain bridge {self.table} {chain}")
        pod = self.pods[host]
        if pod.host is None:
            return  # powered off: the rules come with its next veths (`rewired`)
        helper = self._ensure_helper()
        # Disconnected from a network: no veth there, and the rules come with the next one.
        for address, index in pod.iflinks().items():
            veth = _veth_with_index(helper, index)
            family = "ip6" if ":" in address else "ip"
            # What the host sends, as it enters the bridge; what is sent to it, as it leaves.
            matches = {
                "outbound": f"iifname {veth} {family} saddr {address}",
                "inbound": f"oifname {veth} {family} daddr {address}",
            }
            for way in sorted(self._holes.get(host, set())):
                self._nft(f"add rule bridge {self.table} {chain} {matches[way]} drop")
            below, ways = self._losses.get(host, (0, set()))
            for way in sorted(ways):
                sample = f"numgen random mod 10000 < {below}"
                self._nft(f"add rule bridge {self.table} {chain} {matches[way]} {sample} drop")

    def netem(self, host: str, args: list[str]) -> None:
        """netem on the wire side of the host's veth: its egress is what reaches the host."""
        helper = self._ensure_helper()
        pod = self.pods[host]
        links = pod.iflinks()
        if not links:
            raise RuntimeError(f"{host} has no interface (disconnected?)")
        # On its first network: a router's netem shapes what reaches it there.
        veth = _veth_with_index(helper, links.get(pod.addresses()[0], next(iter(links.values()))))
        code, out = helper.exec_run(["tc", "qdisc", "replace", "dev", veth, "root", "netem", *args])
        if code != 0:
            text = _text(out).strip()
            if "unknown" in text.lower():
                raise EngineError(
                    "this machine's kernel has no netem qdisc (sch_netem), so netem faults cannot run here; "
                    "`tcpscen doctor` says what the engine supports"
                )
            raise RuntimeError(f"tc netem on {veth} (host {host}): {text[:300]}")
        self._netem[host] = veth

    def heal(self, host: str) -> None:
        if self._helper is None:
            return
        self._holes.pop(host, None)
        self._losses.pop(host, None)
        if self._tables_made:
            with contextlib.suppress(RuntimeError):  # no chain yet: nothing was blackholed
                self._nft(f"flush chain bridge {self.table} {_chain(host)}")
        veth = self._netem.pop(host, None)
        if veth is not None:
            self._helper.exec_run(["tc", "qdisc", "del", "dev", veth, "root"])

    @property
    def has_table(self) -> bool:
        """The run's table exists (made, and not yet deleted)."""
        return self._tables_made

    def remove(self) -> None:
        """Delete the run's table, then the helper. (A netem qdisc goes with its veth.)"""
        if self._helper is None:
            return
        try:
            if self._tables_made:
                # Not there is gone too: the flag is set before the table is made, so a signal
                # while it was being made leaves the flag without the table.
                delete_table(self._helper, self.table)
                self._tables_made = False
        finally:
            self._helper.remove(force=True)
            self._helper = None

    def _host_chain(self, host: str) -> str:
        chain = _chain(host)
        self._ensure_helper()
        if not self._tables_made:
            self._tables_made = True
            self._nft(f"add table bridge {self.table}")
            self._nft(
                f"add chain bridge {self.table} forward "
                "{ type filter hook forward priority -10 ; policy accept ; }"
            )
        self._nft(f"add chain bridge {self.table} {chain}")
        listing = self._nft(f"list chain bridge {self.table} forward")
        if f"jump {chain}" not in listing:
            self._nft(f"add rule bridge {self.table} forward jump {chain}")
        return chain

    def _ensure_helper(self) -> Container:
        if self._helper is None:
            run_labels = labels.for_run(self.run_id, self.scenario.name, part="link")
            self._helper = start_helper(self.client, self.image, run_labels)
        return self._helper

    def _nft(self, command: str) -> str:
        assert self._helper is not None
        return run_nft(self._helper, command)


def _veth_with_index(helper: Container, index: int) -> str:
    """The host-side interface whose ifindex the container's eth names as its peer (iflink)."""
    code, out = helper.exec_run(["ip", "-o", "link"])
    for line in _text(out).splitlines():
        number, _, rest = line.partition(": ")
        if number.strip() == str(index):
            return rest.split(":", 1)[0].split("@", 1)[0]
    raise RuntimeError(f"no interface with index {index} on the host (exit {code})")


def _text(out: object) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else str(out)


def _chain(host: str) -> str:
    return "h_" + re.sub(r"[^A-Za-z0-9_]", "_", host)


def _ways(direction: str) -> set[str]:
    return {"inbound", "outbound"} if direction == "both" else {direction}


def start_helper(
    client: docker.DockerClient,
    image: str,
    run_labels: dict[str, str],
    caps: tuple[str, ...] = ("NET_ADMIN",),
) -> Container:
    """A container in the machine's own network namespace with NET_ADMIN alone (for nft and tc;
    iptables' helpers add NET_RAW)."""
    with shielded():
        container: Container = client.containers.run(
            image,
            ["sleep", "infinity"],
            network_mode="host",  # the bridges and DOCKER-USER live in the host's namespace
            cap_drop=["ALL"],
            cap_add=list(caps),
            labels=run_labels,
            detach=True,
            **limits.HELPER,
        )
    return container


def run_nft(helper: Container, command: str) -> str:
    # nft joins its arguments and parses them itself: no shell, so ';' and '{' need no quoting.
    code, out = helper.exec_run(["nft", *command.split()])
    text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
    if code != 0:
        raise RuntimeError(f"nft {command}: {text.strip()[:300]}")
    return text


def list_tables(helper: Container) -> list[str]:
    """Every tcpscen_ table in the bridge family: the runs' own, and any a killed run left."""
    names = [line.split()[-1] for line in run_nft(helper, "list tables bridge").splitlines() if line.strip()]
    return [name for name in names if name.startswith(TABLE_PREFIX)]


def delete_table(helper: Container, name: str) -> bool:
    """False if it was gone already (another `tcpscen clean` was first)."""
    try:
        run_nft(helper, f"delete table bridge {name}")
    except RuntimeError as exc:
        if "No such file or directory" in str(exc):
            return False
        raise
    return True
