"""`tcpscen clean` and `doctor` on a shared engine: a run still going is never touched, a killed
one is removed, and four cleans at once all succeed (no raw 404 or 409 from the engine)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.backend.docker.bridge import table_name
from tests.helpers.leftovers import left_by, run_ids, world_writable
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.engine
SCENARIO = ROOT / "scenarios/blackhole_one_way.yaml"  # containers, network and an nft table


def start(runs_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(SCENARIO), "--runs-dir", str(runs_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1"},
    )


def until_blackholed(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    seen = ""
    while "blackholed" not in seen:
        line = proc.stdout.readline()
        assert line, seen
        seen += line
    return seen


def tcpscen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )


def test_cleans_at_once_remove_a_killed_run_and_leave_a_live_one(tmp_path: Path) -> None:
    live_dir, dead_dir = tmp_path / "live", tmp_path / "dead"
    live, dead = start(live_dir), start(dead_dir)
    until_blackholed(dead)
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=10)
    before = until_blackholed(live)
    [live_id], [dead_id] = run_ids(live_dir), run_ids(dead_dir)
    killed = left_by(dead.pid, dead_dir)
    assert all(killed), f"the killed run left containers, a network and its table: {killed}"
    assert world_writable(dead_dir) == [], "nothing stays open to all after a SIGKILL"

    doctor = tcpscen("doctor").communicate(timeout=60)[0]
    assert "running: " in doctor and f"{live_id} (pid {live.pid})" in doctor, doctor
    leftovers = next(line for line in doctor.splitlines() if "leftovers:" in line)
    assert dead_id in leftovers and live_id not in leftovers, doctor

    cleans = [tcpscen("clean") for _ in range(4)]
    outs = [c.communicate(timeout=120)[0] for c in cleans]
    for clean, out in zip(cleans, outs, strict=True):
        assert clean.returncode == 0, out
        assert "404" not in out and "409" not in out and "Traceback" not in out, out
        assert f"left alone: {live_id} (still running, pid {live.pid})" in out, out
    assert left_by(dead.pid, dead_dir) == ([], [], []), "the killed run is gone"
    removed = "\n".join(outs)
    assert table_name(dead_id) in removed, "its nftables table was removed by one of the cleans"
    assert table_name(live_id) not in removed and f"tcpscen-{live_id}" not in removed, removed

    rest, _ = live.communicate(timeout=60)
    assert live.returncode == 0 and "result: PASS" in rest, before + rest
    assert left_by(live.pid, live_dir) == ([], [], [])
