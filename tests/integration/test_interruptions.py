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

import docker
import docker.errors
import pytest

from orchestrator.backend.docker import labels
from orchestrator.backend.docker.cleanup import remove_leftovers
from orchestrator.backend.docker.engine import connect_engine
from orchestrator.backend.docker.images import wanted_images
from orchestrator.pcap.reader import read_tcp
from tests.helpers.leftovers import left_by, world_writable
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.engine

# blackhole_one_way uses every kind of object a run makes: network, host and app containers,
# the wire helper and its nftables table. Its fault comes 1 s after connecting; it ends near 15 s.
SCENARIO = ROOT / "scenarios/blackhole_one_way.yaml"
POINTS = [0.3 * i for i in range(1, 21)] + [4.0, 8.0, 13.5, 15.5, 16.2, 16.6]  # 26, start to verdict


@pytest.fixture(autouse=True)
def clean_slate() -> None:
    """Dead runs' leftovers (an earlier failure's) removed; each test then judges only its own
    process's objects (`left_by`): the engine may be running other people's runs."""
    remove_leftovers(connect_engine())


def start(runs_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(SCENARIO), "--runs-dir", str(runs_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
    )


def wait_for_blackhole(proc: subprocess.Popen[str], runs_dir: Path, timeout_s: float = 60) -> None:
    """Until the run's nft table exists (the fault is in place): a fixed sleep was too short
    on a loaded machine."""
    deadline = time.monotonic() + timeout_s
    while not left_by(proc.pid, runs_dir)[2]:
        assert proc.poll() is None and time.monotonic() < deadline, "the blackhole never came"
        time.sleep(0.2)


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
    if proc.returncode == 130:  # the last line says so (just "interrupted" before any engine call)
        last = out.rstrip().splitlines()[-1]
        assert last in ("interrupted; nothing of the run is left behind", "interrupted"), out
    assert left_by(proc.pid, tmp_path) == ([], [], []), f"after {sig.name} at {delay:.1f}s:\n{out}"
    assert_pcaps_readable(tmp_path)
    assert world_writable(tmp_path) == []


# The second signal 0.1 s after the first, which once broke the clean-up: (what the run has
# printed, then how long after, whether the clean-up is surely still going 0.1 s later): in the
# image check, while the network is made, while the hosts' tcpdumps start, as the apps start,
# with the blackhole in place, and later.
DOUBLE = [
    ("checking images", 0.0, False),
    ("starting hosts and captures", 0.05, False),
    ("starting hosts and captures", 0.5, True),
    ("traffic started", 0.0, True),
    ("blackholed", 0.3, True),
    ("blackholed", 3.0, True),
]


def wait_for(proc: subprocess.Popen[str], text: str) -> str:
    """The run's output up to the line that holds `text`."""
    assert proc.stdout is not None
    seen = ""
    while text not in seen:
        line = proc.stdout.readline()
        assert line, f"the run ended before printing {text!r}:\n{seen}"
        seen += line
    return seen


@pytest.mark.parametrize(("marker", "after", "held"), DOUBLE)
def test_a_second_ctrl_c_does_not_break_the_clean_up(
    marker: str, after: float, held: bool, tmp_path: Path
) -> None:
    proc = start(tmp_path)
    before = wait_for(proc, marker)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    first = time.monotonic()
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    took = time.monotonic() - first
    out = before + rest
    assert proc.returncode == 130 and "Traceback" not in out, out
    assert "interrupted: cleaning up, please wait" in out, out
    assert "still cleaning up, please wait" in out or not held, out
    assert out.rstrip().endswith("interrupted; nothing of the run is left behind"), out
    assert left_by(proc.pid, tmp_path) == ([], [], []), f"{after}s after {marker}:\n{out}"
    assert took < 8, f"the clean-up took {took:.1f} s: a capture's stop timed out?\n{out}"
    assert world_writable(tmp_path) == []
    assert_pcaps_readable(tmp_path)


def test_a_third_signal_aborts_saying_what_is_left_for_clean(tmp_path: Path) -> None:
    proc = start(tmp_path)
    wait_for_blackhole(proc, tmp_path)  # containers, network and the nft table
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
        proc.send_signal(sig)
        time.sleep(0.02)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in out, out
    said = out[out.index("aborted; left behind:") :]
    assert "`tcpscen clean` removes it" in said, out
    containers, networks, tables = left_by(proc.pid, tmp_path)
    assert containers or networks or tables, "aborted early: something was left"
    for table in tables:
        assert f"nftables table bridge {table}" in said, out
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "clean"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert left_by(proc.pid, tmp_path) == ([], [], [])
    assert world_writable(tmp_path) == []


def test_sigkill_then_clean(tmp_path: Path) -> None:
    proc = start(tmp_path)
    wait_for_blackhole(proc, tmp_path)  # mid-fault
    proc.kill()
    proc.wait(timeout=30)
    containers, networks, tables = left_by(proc.pid, tmp_path)
    assert containers and networks and tables, "SIGKILL leaves the run's objects for `tcpscen clean`"
    assert world_writable(tmp_path) == [], "nothing stays open to all after a SIGKILL"
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "clean"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert left_by(proc.pid, tmp_path) == ([], [], [])
    assert_pcaps_readable(tmp_path)


def build_containers(client: docker.DockerClient) -> set[str]:
    """Containers without a run label: the builder's steps. Every run's own containers carry the
    label, so another run on the same engine (a concurrent test, a user) is never taken for the
    build, nor counted as its leftover."""
    return {str(c.id) for c in client.containers.list(all=True) if labels.RUN not in c.labels}


def test_interrupted_while_the_image_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    salt = f"interrupt-{time.time_ns()}"
    env = {**os.environ, "TCPSCEN_IMAGE_SALT": salt, "COLUMNS": "200"}
    client = connect_engine()
    before = build_containers(client)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(SCENARIO), "--runs-dir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    building = False
    for _ in range(100):  # until the build runs a step
        time.sleep(0.1)
        building = bool(build_containers(client) - before)
        if building:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert building, "the build ran no step: the salt missed the cache of none (was the image cached?)"
    assert proc.returncode == 130 and "Traceback" not in out, out
    assert "building tcpscen/agent" in out, out
    time.sleep(3)  # the engine finishes or cancels the build step it was in
    assert left_by(proc.pid, tmp_path)[:2] == ([], [])
    assert build_containers(client) <= before, "no build container is left"
    # The salted image, if the engine finished building it, is only an image: not the run's to keep.
    monkeypatch.setenv("TCPSCEN_IMAGE_SALT", salt)
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(wanted_images().agent, force=True)
