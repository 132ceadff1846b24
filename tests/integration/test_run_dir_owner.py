"""On a real run: the run directory is never writable by anyone else, the capture runs as the
invoking user (not root, not the image's tcpdump user), and every file ends the invoking user's.
tcpscen runs as root here with SUDO_UID/SUDO_GID set, as `sudo tcpscen run` would."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import docker.errors
import pytest

from orchestrator.backend.docker.engine import connect_engine
from tests.integration.conftest import ROOT

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(os.geteuid() != 0, reason="acts as sudo: needs root"),
]
SUDO = (4242, 4243)  # no such user on the machine: only the numbers count


def entries(runs: Path) -> list[Path]:
    return [p for d in runs.iterdir() for p in (d, *d.iterdir())] if runs.exists() else []


def test_under_sudo_the_run_is_the_sudo_users_from_capture_to_report(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    client = connect_engine()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(ROOT / "scenarios/kill9_server.yaml"),
            "--runs-dir",
            runs,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SUDO_UID": str(SUDO[0]), "SUDO_GID": str(SUDO[1])},
    )
    users: set[str] = set()
    looks = 0
    while proc.poll() is None:
        for path in entries(runs):
            try:
                info = path.lstat()
            except FileNotFoundError:  # a staging folder, gone between listing and looking
                continue
            looks += 1
            assert not info.st_mode & 0o022, f"{path} is writable by others: {stat.filemode(info.st_mode)}"
            assert not stat.S_ISLNK(info.st_mode), path
            assert info.st_uid in (0, SUDO[0]), (path, info.st_uid)
            if path.suffix == ".pcap":
                assert info.st_uid == SUDO[0], "the capture's file is the sudo user's from the start"
        try:
            found = client.containers.list(filters={"label": f"tcpscen.owner.pid={proc.pid}"})
            users |= {c.attrs["Config"]["User"] for c in found if c.labels.get("tcpscen.part") == "host"}
        except docker.errors.NotFound:
            pass
        time.sleep(0.05)
    out = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 0, out
    assert looks > 50, "the directory was watched while the run went on"
    assert users == {f"{SUDO[0]}:{SUDO[1]}"}, "tcpdump ran as the sudo user"
    for path in [runs, *entries(runs)]:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == SUDO, path
        assert not info.st_mode & 0o022, path
    run_dir = next(runs.iterdir())
    assert {"client.pcap", "server.pcap", "verdict.json", "junit.xml", "timeline.jsonl"} <= {
        p.name for p in run_dir.iterdir()
    }
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")], "no staging folder is left"
