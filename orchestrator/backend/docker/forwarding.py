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
from dataclasses import dataclass

import docker
from docker.models.containers import Container

from orchestrator.backend.docker import labels
from orchestrator.backend.docker.bridge import start_helper

COMMENT_PREFIX = "tcpscen_"
# Docker programs whichever iptables its host uses: the one that has DOCKER-USER is it.
_BACKENDS = ("iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy")
IPTABLES_CAPS = ("NET_ADMIN", "NET_RAW")  # iptables-legacy opens a raw socket to talk to the kernel


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

    @property
    def rule_comment(self) -> str | None:
        """The comment of the rules this run still has in DOCKER-USER (None: it has none)."""
        return comment(self.run_id) if self.added else None

    def remove(self) -> None:
        if self.helper is None:
            return
        try:
            for tool, rule in self.added:
                self.helper.exec_run([tool, "-D", *rule])
            self.added = []
        finally:
            with contextlib.suppress(docker.errors.APIError):
                self.helper.remove(force=True)
            self.helper = None

    def _helper(self) -> Container:
        if self.helper is None:
            self.helper = start_helper(
                self.client,
                self.image,
                labels.for_run(self.run_id, self.scenario, part="forward"),
                caps=IPTABLES_CAPS,
            )
        return self.helper


@dataclass(frozen=True)
class Rule:
    """One DOCKER-USER rule of some run's, as `iptables -S` lists it."""

    tool: str
    line: str  # "-A DOCKER-USER -i br-... -m comment --comment tcpscen_<run> -j ACCEPT"
    tag: str  # its comment: `comment(run_id)`


def list_rules(helper: Container) -> list[Rule]:
    """Every run's DOCKER-USER rules (for `tcpscen clean`, which removes a dead run's)."""
    rules: list[Rule] = []
    for tool in _BACKENDS:
        code, out = helper.exec_run([tool, "-S", "DOCKER-USER"])
        if code != 0:
            continue
        for line in _text(out).splitlines():
            match = re.search(r"--comment \"?(" + COMMENT_PREFIX + r"\w+)", line)
            if match is not None:
                rules.append(Rule(tool, line, match.group(1)))
    return rules


def delete_rule(helper: Container, rule: Rule) -> bool:
    words = rule.line.split()[1:]  # "-A DOCKER-USER ..." -> "DOCKER-USER ..."
    code, _ = helper.exec_run([rule.tool, "-D", *[w.strip('"') for w in words]])
    return code == 0


def _text(out: object) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else str(out)
