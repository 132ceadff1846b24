"""The engine restarting mid-run: the run stops cleanly with exit 3 and keeps what it captured.

Runs after every other engine test but the leftovers check (`last(1)`): it restarts the engine
that scripts/ensure-engine.sh started. On a machine whose engine we did not start (a laptop's),
the test cannot restart it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backend.docker.cleanup import leftovers
from orchestrator.backend.docker.engine import connect_engine
from orchestrator.errors import CaptureFormatError
from orchestrator.pcap.reader import read_tcp
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.engine, pytest.mark.last(1)]
PIDFILE = Path(os.environ.get("TCPSCEN_STATE_DIR", "/var/lib/tcpscen")) / "dockerd.pid"


def our_dockerd() -> int | None:
    try:
        pid = int(PIDFILE.read_text())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "dockerd" else None


def test_engine_restart_mid_run_is_exit_3(tmp_path: Path) -> None:
    pid = our_dockerd()
    if pid is None:
        pytest.skip(
            "this engine was not started by scripts/ensure-engine.sh; restarting it is not ours to do"
        )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(ROOT / "scenarios/keepalive_off_cut.yaml"),
            "--runs-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Connected and idle (the server's cable is cut 1 s after the connection): a fixed
        # sleep of 4 s was too short on a loaded machine, where the pods were still starting.
        connected = _wait_for_segments(tmp_path, timeout=90)
        time.sleep(2)
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if our_dockerd() != pid or not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.2)
        try:
            out, _ = proc.communicate(timeout=120)
        finally:
            subprocess.run(["bash", str(ROOT / "scripts/ensure-engine.sh")], check=True, timeout=120)
        assert connected, "the run never connected"
        assert proc.returncode == 3, out
        assert "engine" in out and "Traceback" not in out, out
        run_dir = next(tmp_path.iterdir())
        packets = list(read_tcp(run_dir / "client.pcap"))
        assert packets, "the capture made before the restart is kept"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # The restarted engine still lists the dead run's objects; `tcpscen clean` removes them
        # (in `finally`: a failure here must not leave them to fail the leftovers check too).
        subprocess.run([sys.executable, "-m", "orchestrator", "clean"], cwd=ROOT, check=True, timeout=120)
    assert leftovers(connect_engine()) == (0, 0)


def _wait_for_segments(runs: Path, timeout: float) -> bool:
    """Whether the run's client capture holds a TCP segment within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pcap in runs.glob("*/client.pcap"):
            with contextlib.suppress(CaptureFormatError):  # not written yet
                if any(True for _ in read_tcp(pcap)):
                    return True
        time.sleep(0.5)
    return False
