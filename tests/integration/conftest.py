"""Integration tests run real scenarios on the real engine, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TCPSCEN = [sys.executable, "-m", "orchestrator"]


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    run_dir: Path | None

    def verdict(self) -> dict[str, Any]:
        assert self.run_dir is not None, self.stdout + self.stderr
        data: dict[str, Any] = json.loads((self.run_dir / "verdict.json").read_text())
        return data

    def checks(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.verdict()["checks"]}


def tcpscen(*args: str | Path, runs_dir: Path, timeout: float = 300) -> CliRun:
    done = subprocess.run(
        [*TCPSCEN, *map(str, args), "--runs-dir", str(runs_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.exists() else []
    return CliRun(done.returncode, done.stdout, done.stderr, dirs[-1] if dirs else None)


def scenario_names(sweeps: bool = False) -> list[str]:
    """The shipped scenarios, by name: the plain ones, or (`sweeps`) those that are sweeps (a
    run per value: `test_sweep.py`)."""
    return sorted(
        p.stem
        for p in (ROOT / "scenarios").glob("*.yaml")
        if bool(yaml.safe_load(p.read_text()).get("sweep")) == sweeps
    )


def tshark_count(pcap: Path, display_filter: str) -> int:
    return len(tshark_frames(pcap, display_filter))


def tshark_frames(pcap: Path, display_filter: str) -> list[int]:
    """The frame numbers tshark's display filter picks in a capture."""
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed: `make test` installs it (scripts/setup-host.sh)")
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(n) for n in out.split()]


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


_runs: dict[str, CliRun] = {}


@pytest.fixture(scope="session")
def scenario_run(runs_root: Path) -> Callable[[str], CliRun]:
    """Run a shipped scenario once per session; every test that needs its run directory shares it."""

    def get(name: str) -> CliRun:
        if name not in _runs:
            _runs[name] = tcpscen("run", ROOT / f"scenarios/{name}.yaml", runs_dir=runs_root / name)
        return _runs[name]

    return get


@pytest.fixture
def run(scenario_run: Callable[[str], CliRun]) -> Callable[[str], CliRun]:
    """A shipped scenario's shared run, which must have passed (exit 0)."""

    def go(name: str) -> CliRun:
        result = scenario_run(name)
        assert result.code == 0, result.stdout + result.stderr
        return result

    return go
