"""The CLI's edge: bad input is exit 2 with every problem and no traceback, before any Docker call."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


BAD = """\
duration: 10s
hosts:
  server: {role: server, address: 10.77.0.10}
  client: {role: client, address: 10.77.0.20, agent: {connect: "server:7000", evry: 1s}}
timeline:
  - {at: 1s, fault: unplug, host: server}
"""


def test_validate_ok() -> None:
    done = cli("validate", ROOT / "scenarios")
    assert done.returncode == 0, done.stderr
    assert "power_cut" in done.stdout


def test_keepalive_timings_without_keepalive_warn_but_validate(tmp_path: Path) -> None:
    """keepidle/keepintvl without keepalive: true load (the kernel keeps them), yet no probe
    is ever sent: a warning, exit 0; with keepalive: true, no warning."""
    text = """\
duration: 10s
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: echo}}
  client:
    role: client
    address: 10.77.0.20
    agent: {mode: idle, connect: "server:7000", socket: {keepidle: 2s, keepintvl: 1s}}
"""
    path = tmp_path / "ka.yaml"
    path.write_text(text)
    done = cli("validate", path)
    assert done.returncode == 0, done.stdout + done.stderr
    want = "warning client: keepidle/keepintvl set but SO_KEEPALIVE never enabled (keepalive: true): no"
    assert want in done.stdout
    path.write_text(text.replace("socket: {", "socket: {keepalive: true, "))
    done = cli("validate", path)
    assert done.returncode == 0 and "warning" not in done.stdout, done.stdout


def test_bad_scenario_reports_all_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    # DOCKER_HOST points nowhere: reaching the engine would fail with exit 3, not 2.
    done = cli("run", bad, "--runs-dir", tmp_path / "runs", env={"DOCKER_HOST": "tcp://127.0.0.1:9"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{bad}:4: hosts.client.agent.evry: unknown key (did you mean 'every'?)" in done.stderr
    assert f"{bad}:6: timeline[0].fault: unknown 'unplug'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_no_engine_is_exit_3(tmp_path: Path) -> None:
    done = cli("clean", env={"DOCKER_HOST": "tcp://127.0.0.1:9"})
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no Docker engine answers" in done.stderr
    assert "Traceback" not in done.stderr


def test_usage_error_is_exit_2() -> None:
    done = cli("run", "--no-such-flag")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
