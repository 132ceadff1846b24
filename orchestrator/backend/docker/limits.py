"""Memory and process limits of every container a run makes: a runaway program in a scenario (a
fork bomb, a leak) stops at its container's limit, not at the machine, and the run's clean-up
goes on. Memory with swap is limited to the same amount (no swapping beyond it); pids counts
threads too. The app's limits come from the scenario (`limits:` on a host)."""

from __future__ import annotations

from typing import Any

from orchestrator.scenario.model import Limits

MIB = 1024 * 1024
# tcpdump as the namespace's owner, plus the short tools run in it (ss, ip, iptables).
HOST: dict[str, Any] = {"mem_limit": 128 * MIB, "memswap_limit": 128 * MIB, "pids_limit": 64}
# The wire helper (nft, tc, ip) and doctor's probe.
HELPER: dict[str, Any] = {"mem_limit": 64 * MIB, "memswap_limit": 64 * MIB, "pids_limit": 32}


def for_app(limits: Limits) -> dict[str, Any]:
    return {"mem_limit": limits.memory, "memswap_limit": limits.memory, "pids_limit": limits.pids}
