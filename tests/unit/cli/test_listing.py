"""`tcpscen list`: what runs on each host of a scenario."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cli.listing import programs_of
from orchestrator.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[3]


def test_a_router_is_listed_as_what_it_does_not_as_an_agent() -> None:
    # A router runs no app (README); it was listed as "nat: agent".
    listed = programs_of(load_scenario(ROOT / "scenarios/nat_idle_timeout.yaml"))
    assert listed == (
        "server: agent echo; nat: router, masquerade outside, forgotten flows drop; client: agent send"
    )
    assert "lb: router, masquerade outside, forgotten flows reset-both" in programs_of(
        load_scenario(ROOT / "scenarios/lb_idle_reset.yaml")
    )
