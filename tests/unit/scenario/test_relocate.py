from __future__ import annotations

import ipaddress
from pathlib import Path

from orchestrator.agent.config import agent_config
from orchestrator.scenario.loader import load_scenario
from orchestrator.scenario.relocate import candidate_subnets, relocate

ROOT = Path(__file__).resolve().parents[3]


def test_relocate_keeps_each_host_in_its_place() -> None:
    s = load_scenario(ROOT / "scenarios/power_cut.yaml")
    moved = relocate(s, ipaddress.IPv4Network("10.77.5.0/24"))
    assert str(moved.hosts["server"].address) == "10.77.5.10"
    assert str(moved.hosts["client"].address) == "10.77.5.20"
    assert moved.hosts["server"].effective_mac == "02:42:0a:4d:05:0a"
    assert moved.hosts["client"].sysctls == s.hosts["client"].sysctls
    assert '"connect":"10.77.5.10:7000"' in agent_config(moved, "client")
    assert relocate(s, s.network.subnet) is s


def test_candidates_start_with_the_scenarios_own_subnet_and_never_repeat() -> None:
    s = load_scenario(ROOT / "scenarios/normal_close.yaml")
    subnets = list(candidate_subnets(s))
    assert subnets[0] == s.network.subnet
    assert len(subnets) == len(set(subnets)) == 256
