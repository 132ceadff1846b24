"""A runaway program in a host stops at its container's limits (the scenario's own, here), and
the run still ends with a verdict and removes everything. Each program is bounded even without
the limits (400 sleeping processes, 384 MiB), so a regression fails the test, not the machine."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import docker.errors
import pytest
from docker.models.containers import Container

from orchestrator.backend.docker.engine import connect_engine
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.engine

SCENARIO = """\
name: runaway
duration: 12s
hosts:
  server:
    role: server
    address: 10.77.0.10
    limits: {memory: 64m, pids: 48}
    agent: {mode: echo, port: 7000}
  client:
    role: client
    address: 10.77.0.20
    agent: {mode: send, connect: "server:7000", every: 200ms}
expect:
  handshake: complete
"""
MIB = 1024 * 1024
HOG = """\
chunks = []
for i in range(24):
    chunks.append(bytearray(b"\\x01") * (16 * 1024 * 1024))  # touched: really resident
    print(i + 1, flush=True)
"""
FORK_BOMB = """\
import os, time
n = 0
try:
    for _ in range(400):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as e:
    print("refused after", n, flush=True)
else:
    print("all", n, flush=True)
"""


def server_app(client: docker.DockerClient, pid: int) -> Container | None:
    found = client.containers.list(filters={"label": [f"tcpscen.owner.pid={pid}", "tcpscen.part=app"]})
    return next((c for c in found if c.labels.get("tcpscen.host") == "server"), None)


def test_a_fork_bomb_and_a_memory_hog_stop_at_the_hosts_limits(tmp_path: Path) -> None:
    path = tmp_path / "runaway.yaml"
    path.write_text(SCENARIO)
    client = connect_engine()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(path), "--runs-dir", str(tmp_path / "runs")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    app = None
    for _ in range(300):
        app = server_app(client, proc.pid)
        if app is not None:
            break
        time.sleep(0.05)
    assert app is not None, "the server's app started"
    host = client.containers.list(filters={"label": [f"tcpscen.owner.pid={proc.pid}", "tcpscen.part=host"]})[
        0
    ]
    assert (app.attrs["HostConfig"]["Memory"], app.attrs["HostConfig"]["PidsLimit"]) == (64 * MIB, 48)
    assert app.attrs["HostConfig"]["MemorySwap"] == 64 * MIB, "no swap beyond the limit"
    assert (host.attrs["HostConfig"]["Memory"], host.attrs["HostConfig"]["PidsLimit"]) == (128 * MIB, 64)

    hog = app.exec_run(["python3", "-c", HOG])
    reached = [int(n) for n in hog.output.decode().split()]
    assert hog.exit_code == 137, f"the hog was killed by the memory limit: {hog}"
    assert max(reached, default=0) * 16 < 64, reached
    bomb = app.exec_run(["python3", "-c", FORK_BOMB])
    said = bomb.output.decode()
    assert said.startswith("refused after"), said
    assert int(said.split()[2]) < 48, said

    out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, 1) and "Traceback" not in out, out  # a verdict, not an error
    assert "result:" in out, out
    for kind in ("containers", "networks"):
        try:
            listing = getattr(client, kind).list(filters={"label": f"tcpscen.owner.pid={proc.pid}"})
        except docker.errors.NotFound:
            listing = ["(listed while removed)"]
        assert listing == [], f"{kind} left: {listing}"
