"""Let routed packets cross the run's own bridges.

With br_netfilter (`bridge-nf-call-iptables=1`, as Docker sets it), every frame a bridge
forwards also goes through the host's iptables FORWARD chain, where Docker drops, on an
internal network, any packet whose source or destination lies outside the network's subnet.
A packet a client sends through its router to another network has such a destination, so it
would die on the wire. One rule per bridge in DOCKER-USER (the chain Docker keeps for its
users, evaluated first) accepts frames that enter **and** leave the same bridge of this run:
traffic between two of the run's own containers, never to or from the host or another network.
The rules carry the comment `tcpscen_<run>`, and are removed with the run (and by `tcpscen clean`).
"""

from __future__ import annotations

import contextlib
import re

import docker
from docker.models.containers import Container

from orchestrator.backend.docker import labels
from orchestrator.interrupts import shielded

COMMENT_PREFIX = "tcpscen_"
# Docker programs whichever iptables its host uses: the one that has DOCKER-USER is it.
_BACKENDS = ("iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy")


def comment(run_id: str) -> str:
    return COMMENT_PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", run_id)


def bridge_name(network_id: str) -> str:
    return "br-" + network_id[:12]


class Forwarding:
    def __init__(self, client: docker.DockerClient, image: str, run_id: str, scenario: str) -> None:
        self.client, self.image, self.run_id, self.scenario = client, image, run_id, scenario
        self.helper: Container | None = None
        self.added: list[tuple[str, list[str]]] = []  # (tool, rule) to delete on removal

    def allow(self, bridges: list[str]) -> None:
        helper = self._helper()
        for tool in _BACKENDS:
            code, _ = helper.exec_run([tool, "-S", "DOCKER-USER"])
            if code != 0:
                continue
            for bridge in bridges:
                rule = [
                    "DOCKER-USER",
                    "-i",
                    bridge,
                    "-o",
                    bridge,
                    "-m",
                    "comment",
                    "--comment",
                    comment(self.run_id),
                ]
                code, out = helper.exec_run([tool, "-I", *rule, "-j", "ACCEPT"])
                if code != 0:
                    raise RuntimeError(f"{tool} -I DOCKER-USER for {bridge}: {_text(out).strip()[:300]}")
                self.added.append((tool, [*rule, "-j", "ACCEPT"]))

    def remove(self) -> None:
        if self.helper is None:
            return
        try:
            for tool, rule in self.added:
                self.helper.exec_run([tool, "-D", *rule])
        finally:
            with contextlib.suppress(docker.errors.APIError):
                self.helper.remove(force=True)
            self.helper = None

    def _helper(self) -> Container:
        if self.helper is None:
            self.helper = start_helper(
                self.client, self.image, labels.for_run(self.run_id, self.scenario, part="forward")
            )
        return self.helper


def start_helper(client: docker.DockerClient, image: str, run_labels: dict[str, str]) -> Container:
    with shielded():
        container: Container = client.containers.run(
            image,
            ["sleep", "infinity"],
            network_mode="host",  # the bridges and DOCKER-USER live in the host's namespace
            cap_drop=["ALL"],
            cap_add=["NET_ADMIN", "NET_RAW"],  # iptables needs NET_RAW for its socket
            labels=run_labels,
            detach=True,
        )
    return container


def remove_rules(helper: Container, run_id: str | None) -> list[str]:
    """For `tcpscen clean`: the DOCKER-USER rules of a run (or of every run) a killed run left."""
    removed: list[str] = []
    for tool in _BACKENDS:
        code, out = helper.exec_run([tool, "-S", "DOCKER-USER"])
        if code != 0:
            continue
        for line in _text(out).splitlines():
            match = re.search(r"--comment \"?(" + COMMENT_PREFIX + r"\w+)", line)
            if match is None or (run_id is not None and match.group(1) != comment(run_id)):
                continue
            rule = line.split()[1:]  # "-A DOCKER-USER ..." -> "DOCKER-USER ..."
            helper.exec_run([tool, "-D", *[r.strip('"') for r in rule]])
            removed.append(f"{tool}: {line}")
    return removed


def _text(out: object) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else str(out)
