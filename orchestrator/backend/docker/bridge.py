"""The wire between the hosts (`backend.base.Wire`): blackholes as nftables rules on the run's
bridge, set from a helper container in the host's network namespace (NET_ADMIN, nothing else).

Dropping on the bridge, between the two veths, is a cut that each side's capture reports truly:
the sender's capture shows what it sent, the receiver's shows nothing arriving. One table per
run, `bridge tcpscen_<run>`, so removing the run's rules is deleting its table.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import docker
import docker.errors
from docker.models.containers import Container

from orchestrator.backend.docker import labels
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

    def blackhole(self, host: str, direction: str) -> None:
        address = self.scenario.hosts[host].address
        family = "ip6" if address.version == 6 else "ip"
        chain = self._host_chain(host)
        rules = []
        if direction in ("both", "outbound"):
            rules.append(f"{family} saddr {address} drop")
        if direction in ("both", "inbound"):
            rules.append(f"{family} daddr {address} drop")
        for rule in rules:
            self._nft(f"add rule bridge {self.table} {chain} {rule}")

    def loss(self, host: str, fraction: float, direction: str) -> None:
        """A random share of the host's packets dropped on the wire (`numgen random`, no netem)."""
        family = "ip6" if self.scenario.hosts[host].address.version == 6 else "ip"
        address = self.scenario.hosts[host].address
        chain = self._host_chain(host)
        below = round(fraction * 10000)  # in 1/10000ths: 3% is < 300
        for match in (
            ["saddr"]
            if direction == "outbound"
            else ["daddr"]
            if direction == "inbound"
            else ["saddr", "daddr"]
        ):
            self._nft(
                f"add rule bridge {self.table} {chain} {family} {match} {address} "
                f"numgen random mod 10000 < {below} drop"
            )

    def hold(self, host: str) -> None:
        """Drop what is sent to the host, on the wire, while it boots: until its capture listens,
        a fresh kernel must not answer anything (it would, with RSTs nobody could see)."""
        spec = self.scenario.hosts[host]
        chain = self._host_chain(host, _chain(host, "p_"))
        for address in spec.all_addresses():
            family = "ip6" if address.version == 6 else "ip"
            self._nft(f"add rule bridge {self.table} {chain} {family} daddr {address} drop")

    def release(self, host: str) -> None:
        if self._tables_made:
            self._nft(f"flush chain bridge {self.table} {_chain(host, 'p_')}")

    def netem(self, host: str, args: list[str]) -> None:
        """netem on the wire side of the host's veth: its egress is what reaches the host."""
        helper = self._ensure_helper()
        veth = _veth_with_index(helper, self.pods[host].iflink())
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
        if self._tables_made:
            with contextlib.suppress(RuntimeError):  # no chain yet: nothing was blackholed
                self._nft(f"flush chain bridge {self.table} {_chain(host)}")
        veth = self._netem.pop(host, None)
        if veth is not None:
            self._helper.exec_run(["tc", "qdisc", "del", "dev", veth, "root"])

    def remove(self) -> None:
        """Delete the run's table, then the helper. (A netem qdisc goes with its veth.)"""
        if self._helper is None:
            return
        try:
            if self._tables_made:
                self._nft(f"delete table bridge {self.table}")
        finally:
            self._helper.remove(force=True)
            self._helper = None

    def _host_chain(self, host: str, name: str | None = None) -> str:
        chain = name or _chain(host)
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
            # Matching the addresses is enough: each run has its own subnet (Docker refuses overlaps).
            # (`meta ibrname` would be tighter, but not every kernel supports it in the bridge family.)
            self._nft(f"add rule bridge {self.table} forward jump {chain}")
        return chain

    def _ensure_helper(self) -> Container:
        if self._helper is None:
            run_labels = labels.for_run(self.run_id, self.scenario.name, part="link")
            self._helper = _start_helper(self.client, self.image, run_labels)
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


def _chain(host: str, prefix: str = "h_") -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", host)


def _start_helper(client: docker.DockerClient, image: str, run_labels: dict[str, str]) -> Container:
    with shielded():
        container: Container = client.containers.run(
            image,
            ["sleep", "infinity"],
            network_mode="host",  # the bridge lives in the host's namespace
            cap_drop=["ALL"],
            cap_add=["NET_ADMIN"],
            labels=run_labels,
            detach=True,
        )
    return container


def run_nft(helper: Container, command: str) -> str:
    # nft joins its arguments and parses them itself: no shell, so ';' and '{' need no quoting.
    code, out = helper.exec_run(["nft", *command.split()])
    text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
    if code != 0:
        raise RuntimeError(f"nft {command}: {text.strip()[:300]}")
    return text


def remove_tables(client: docker.DockerClient, image: str, run_id: str | None) -> list[str]:
    """For `tcpscen clean`: delete the run's table, or every tcpscen_ table, left by a killed run."""
    helper = _start_helper(client, image, labels.for_run("clean", "clean", part="link"))
    removed: list[str] = []
    try:
        listing = run_nft(helper, "list tables bridge")
        for line in listing.splitlines():
            name = line.split()[-1] if line.startswith("table bridge ") else ""
            wanted = table_name(run_id) if run_id else None
            if name.startswith(TABLE_PREFIX) and (wanted is None or name == wanted):
                run_nft(helper, f"delete table bridge {name}")
                removed.append(name)
    finally:
        helper.remove(force=True)
    return removed
