"""The config the orchestrator gives each agent (orchestrator/agent/config.py), against the
agent's own parser (wire.Config.from_json): every host of every shipped scenario."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.agent import wire
from orchestrator.agent.config import agent_config, wire_config
from orchestrator.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))


def test_scenarios_are_shipped() -> None:
    assert len(SHIPPED) >= 10


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_host_gets_a_config_its_agent_accepts(path: Path) -> None:
    scenario = load_scenario(path)
    for name, host in scenario.hosts.items():
        built = wire_config(scenario, name)
        parsed = wire.Config.from_json(agent_config(scenario, name))
        # The agent fills in a mode's default close time; everything else arrives as built.
        assert parsed == dataclasses.replace(built, close_after_s=parsed.close_after_s)
        assert (parsed.host, parsed.role, parsed.mode) == (name, host.role, host.agent.mode)
        if built.close_after_s is not None:
            assert parsed.close_after_s == built.close_after_s
