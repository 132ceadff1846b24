"""A chaos tool must not leave chaos behind: interrupt runs at many points, and check that nothing
of theirs remains and that the pcaps captured so far are kept and readable."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker.errors
import pytest

from orchestrator.backend.docker.bridge import TABLE_PREFIX, run_nft
from orchestrator.backend.docker.cleanup import remove_leftovers
from orchestrator.backend.docker.engine import connect_engine
from orchestrator.backend.docker.images import wanted_images
from orchestrator.pcap.reader import read_tcp
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.engine

# blackhole_one_way uses every kind of object a run makes: network, host and app containers,
# the wire helper and its nftables table. Its fault comes 1 s after connecting; it ends near 15 s.
SCENARIO = ROOT / "scenarios/blackhole_one_way.yaml"
POINTS = [0.3 * i for i in range(1, 21)] + [4.0, 8.0, 13.5, 15.5, 16.2, 16.6]  # 26, start to verdict


def leftovers() -> tuple[list[str], list[str], list[str]]:
    client = connect_engine()
    containers = [c.name or "" for c in client.containers.list(all=True, filters={"label": "tcpscen.run"})]
    networks = [n.name or "" for n in client.networks.list(filters={"label": "tcpscen.run"})]
    helper = client.containers.run(
        wanted_images().agent,
        ["sleep", "30"],
        network_mode="host",
        cap_drop=["ALL"],
        cap_add=["NET_ADMIN"],
        detach=True,
        labels={"tcpscen.probe": "1"},
    )
    try:
        tables = [t for t in run_nft(helper, "list tables bridge").split() if t.startswith(TABLE_PREFIX)]
    finally:
        helper.remove(force=True)
    return containers, networks, tables


@pytest.fixture(autouse=True)
def clean_slate() -> None:
    """Each interruption is judged on its own: an earlier failure's leftovers must not count here."""
    remove_leftovers(connect_engine())


def start(runs_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(SCENARIO), "--runs-dir", str(runs_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def assert_pcaps_readable(runs_dir: Path) -> None:
    for pcap in runs_dir.glob("*/*.pcap"):
        if pcap.stat().st_size == 0:
            continue  # tcpdump had not written its header yet
        capture = read_tcp(pcap)
        packets = list(capture)  # raises CaptureFormatError if it is not a valid capture
        assert capture.packets >= len(packets)


@pytest.mark.parametrize("index", range(len(POINTS)))
def test_interrupted_run_leaves_nothing(index: int, tmp_path: Path) -> None:
    delay = POINTS[index]
    sig = signal.SIGINT if index % 2 == 0 else signal.SIGTERM
    proc = start(tmp_path)
    time.sleep(delay)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out, out
    # 130 when the signal landed mid-run; 0 or 1 only if the run had already given its verdict.
    assert proc.returncode == 130 or ("result:" in out and proc.returncode in (0, 1)), out
    assert leftovers() == ([], [], []), f"after {sig.name} at {delay:.1f}s:\n{out}"
    assert_pcaps_readable(tmp_path)


def test_sigkill_then_clean(tmp_path: Path) -> None:
    proc = start(tmp_path)
    time.sleep(5)  # mid-fault: the blackhole is in place
    proc.kill()
    proc.wait(timeout=30)
    containers, networks, tables = leftovers()
    assert containers and networks and tables, "SIGKILL leaves the run's objects for `tcpscen clean`"
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "clean"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert leftovers() == ([], [], [])
    assert_pcaps_readable(tmp_path)


def test_interrupted_while_the_image_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    salt = f"interrupt-{time.time_ns()}"
    env = {**os.environ, "TCPSCEN_IMAGE_SALT": salt, "COLUMNS": "200"}
    client = connect_engine()
    before = {c.id for c in client.containers.list(all=True)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(SCENARIO), "--runs-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    for _ in range(100):  # until the build has begun
        time.sleep(0.1)
        if any(c.id not in before for c in client.containers.list(all=True)):
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in out, out
    assert "building tcpscen/agent" in out, out
    time.sleep(3)  # the engine finishes or cancels the build step it was in
    assert leftovers()[:2] == ([], [])
    assert {c.id for c in client.containers.list(all=True)} <= before, "no build container is left"
    # The salted image, if the engine finished building it, is only an image: not the run's to keep.
    monkeypatch.setenv("TCPSCEN_IMAGE_SALT", salt)
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(wanted_images().agent, force=True)
