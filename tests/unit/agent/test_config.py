"""The config the orchestrator gives each agent (orchestrator/agent/config.py), against the
agent's own parser (wire.Config.from_json): every host of every shipped scenario."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.agent import wire
from orchestrator.agent.config import agent_config, wire_config
from orchestrator.backend.docker.images import agent_context
from orchestrator.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))


def test_scenarios_are_shipped() -> None:
    assert len(SHIPPED) >= 10


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_host_gets_a_config_its_agent_accepts(path: Path) -> None:
    scenario = load_scenario(path)
    for name, host in scenario.apps().items():  # a router runs no app
        if host.agent is None or not host.runs_agent:
            continue  # a program of the user's runs there
        built = wire_config(scenario, name)
        parsed = wire.Config.from_json(agent_config(scenario, name))
        # The agent fills in a mode's default close time; everything else arrives as built.
        assert parsed == dataclasses.replace(built, close_after_s=parsed.close_after_s)
        assert (parsed.host, parsed.role, parsed.mode) == (name, host.role, host.agent.mode)
        if built.close_after_s is not None:
            assert parsed.close_after_s == built.close_after_s


def test_the_image_layout_runs_without_the_checkout(tmp_path: Path) -> None:
    """The agent's build context, flat as /opt/tcpscen/ in the image: agent.py finds wire.py next
    to itself (the checkout's orchestrator/agent is not reachable from tmp_path), imports all its
    modules, and refuses a bad config with exit 2 and one line."""
    context = agent_context()
    assert context["wire.py"] == Path(wire.__file__)
    for name, source in context.items():
        (tmp_path / name).write_bytes(source.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(tmp_path / "agent.py"), '{"host": "h"}'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == wire.EXIT_BAD_CONFIG
    assert result.stderr == "tcpscen agent: bad config: missing required key 'role'\n"
