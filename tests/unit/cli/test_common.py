"""What `validate` and `run` check before anything runs: the host's routes are fed to the loader,
an empty folder is a problem, and the runs directory must be writable."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli.common import check_writable_dir, expand, load_all
from orchestrator.errors import ScenarioError, UsageError
from orchestrator.scenario import routes

ROOT = Path(__file__).resolve().parents[3]
# The shipped scenarios use 10.77.0.0/24: here the host reaches 10.77.0.0/16 through a VPN.
TABLE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
tun0\t00004D0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""


def test_the_hosts_routes_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "route"
    table.write_text(TABLE)
    monkeypatch.setattr(routes, "ROUTE_TABLE", table)
    scenario = ROOT / "scenarios" / "power_cut.yaml"
    with pytest.raises(ScenarioError) as caught:
        load_all([scenario])
    [problem] = caught.value.problems
    assert (problem.file, problem.key) == (str(scenario), "network.subnet")
    assert "10.77.0.0/24 overlaps the host's network 10.77.0.0/16 (on tun0)" in problem.message
    table.write_text(TABLE.replace("tun0", "br-0123456789ab"))  # a Docker bridge: relocation's job
    assert [s.name for s in load_all([scenario])] == ["power_cut"]


def test_an_empty_folder_is_a_problem_among_the_others(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("duration: soon\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScenarioError) as caught:
        load_all([empty, bad])
    assert str(caught.value.problems[0]) == f"{empty}: no scenario files (*.yaml) in this folder"
    assert len(caught.value.problems) > 1


def test_a_runs_dir_is_made_or_refused(tmp_path: Path) -> None:
    check_writable_dir(tmp_path / "new" / "runs", "--runs-dir")
    assert (tmp_path / "new" / "runs").is_dir()
    assert list((tmp_path / "new" / "runs").iterdir()) == []  # the probe file is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        check_writable_dir(tmp_path / "file", "--runs-dir")
    with pytest.raises(UsageError, match="a part of the path is a file"):
        check_writable_dir(tmp_path / "file" / "runs", "--runs-dir")


def test_a_folder_holding_a_compose_file_beside_its_scenarios(tmp_path: Path) -> None:
    # A user's project: the scenario and the Compose file it names, in one folder.
    (tmp_path / "compose.yaml").write_text((ROOT / "compose" / "redis" / "compose.yaml").read_text())
    for name in ("Dockerfile", "client.py"):
        (tmp_path / name).write_text((ROOT / "compose" / "redis" / name).read_text())
    text = (ROOT / "scenarios" / "redis_power_off.yaml").read_text()
    (tmp_path / "redis_power_off.yaml").write_text(
        text.replace("../compose/redis/compose.yaml", "compose.yaml")
    )
    assert [s.name for s in load_all([tmp_path])] == ["redis_power_off"]  # the Compose file is not one
    assert expand([tmp_path]) == [tmp_path / "redis_power_off.yaml"]
    # Named on its own, it is said to be a Compose file, at its `services:` line.
    with pytest.raises(ScenarioError) as caught:
        load_all([tmp_path / "compose.yaml"])
    [problem] = caught.value.problems
    assert (problem.file, problem.key) == (str(tmp_path / "compose.yaml"), "services")
    assert problem.line is not None and "a Compose file, not a scenario" in problem.message
    # A scenario with a `services` key is still a scenario (its hosts say so): the usual problem.
    (tmp_path / "odd.yaml").write_text(text.replace("hosts:", "services: {}\nhosts:", 1))
    assert expand([tmp_path]) == [tmp_path / "odd.yaml", tmp_path / "redis_power_off.yaml"]
    with pytest.raises(ScenarioError, match="services: unknown key"):
        load_all([tmp_path / "odd.yaml"])
