"""The `reject` fault's firewall rules: one per address family. iptables alone never saw an IPv6
host's segments (measured: an IPv6 bulk transfer went on untouched after the fault was applied)."""

from __future__ import annotations

from typing import Any

from orchestrator.backend.docker.pod import Pod


def _pod(calls: list[list[str]]) -> Pod:
    pod = Pod.__new__(Pod)
    pod.net_admin = True
    pod.host = object()  # type: ignore[assignment]

    def exec_root(command: list[str]) -> str:
        calls.append(command)
        return ""

    pod.exec_root = exec_root  # type: ignore[method-assign]
    return pod


def test_reject_sets_a_rule_for_ipv4_and_for_ipv6() -> None:
    calls: list[list[str]] = []
    _pod(calls).reject()
    rule = ["-I", "INPUT", "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"]
    assert calls == [["iptables", *rule], ["ip6tables", *rule]]


def test_heal_removes_both_rules() -> None:
    calls: list[list[str]] = []
    pod: Any = _pod(calls)
    pod.unreject()
    assert calls == [["iptables", "-F", "INPUT"], ["ip6tables", "-F", "INPUT"]]
