"""Parallel runs keep out of each other's way: own network, subnet and labels, same verdicts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, CliRun, tcpscen

pytestmark = pytest.mark.engine

SEEDS = ["normal_close", "server_close", "kill9_server", "kill9_unread_rst", "power_cut", "keepalive_on_cut"]


def verdicts(runs_dir: Path) -> dict[str, list[dict[str, bool]]]:
    out: dict[str, list[dict[str, bool]]] = {}
    for path in sorted(runs_dir.glob("*/verdict.json")):
        v = json.loads(path.read_text())
        out.setdefault(v["scenario"], []).append({c["name"]: c["passed"] for c in v["checks"]})
    return out


def subnets(runs_dir: Path) -> list[str]:
    found = []
    for path in runs_dir.glob("*/timeline.jsonl"):
        for line in path.read_text().splitlines():
            note = json.loads(line)
            if note.get("kind") == "network":
                found.append(note["subnet"])
    return found


def test_parallel_twice_over_is_stable_and_agrees_with_serial(
    tmp_path: Path, scenario_run: Callable[[str], CliRun]
) -> None:
    files = [ROOT / f"scenarios/{name}.yaml" for name in SEEDS]
    result = tcpscen("run", "-j", "4", "--repeat", "2", *files, runs_dir=tmp_path, timeout=900)
    assert result.code == 0, result.stdout + result.stderr
    for name in SEEDS:
        assert f"{name}: the same verdict 2/2 (PASS)" in result.stdout, result.stdout
    parallel = verdicts(tmp_path)
    assert sorted(parallel) == sorted(SEEDS) and all(len(v) == 2 for v in parallel.values())
    for name in SEEDS:
        serial = scenario_run(name).checks()
        assert all(run == {k: c["passed"] for k, c in serial.items()} for run in parallel[name]), name
    # Four at a time on one subnet is impossible: they were spread over several.
    used = subnets(tmp_path)
    assert len(used) == 2 * len(SEEDS) and len(set(used)) >= 2


V6_OUTSIDE_POOL = """\
name: v6_outside_pool
duration: 10s
network: {subnet: 10.77.50.0/24, subnet6: "fd77:50::/64"}
hosts:
  server: {role: server, address: "fd77:50::10", agent: {mode: echo}}
  client:
    role: client
    address: "fd77:50::20"
    agent: {mode: close, connect: "server:7000", close_after: 300ms}
expect:
  close: fin
"""


def test_parallel_runs_of_an_ipv6_subnet_outside_fd77_48_each_find_a_place(tmp_path: Path) -> None:
    """fd77:50::/64 (beside 10.77.50.0/24) stayed where the scenario put it in every layout, so
    only one of runs in parallel found a free place; the others 'no free subnet'."""
    path = tmp_path / "v6_outside_pool.yaml"
    path.write_text(V6_OUTSIDE_POOL)
    result = tcpscen("run", "-j", "3", "--repeat", "3", path, runs_dir=tmp_path / "runs", timeout=300)
    assert result.code == 0, result.stdout + result.stderr
    assert "v6_outside_pool: the same verdict 3/3 (PASS)" in result.stdout, result.stdout
    assert len(set(subnets(tmp_path / "runs"))) == 3
