"""A disk that fills up during a run: a clear error naming what could not be written, exit 3, no
traceback, and nothing of the run left in the engine. The runs folder is a 2 MiB tmpfs, filled
to all but 20 KiB before the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.backend.docker.engine import connect_engine
from tests.integration.conftest import ROOT

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: needs root"),
]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tcpscen-full", str(mount)], check=True)
    try:
        (mount / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 20 * 1024))
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_ends_the_run_with_a_message_and_exit_3(small_disk: Path) -> None:
    runs = small_disk / "runs"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(ROOT / "scenarios/power_cut.yaml"),
            "--runs-dir",
            runs,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "COLUMNS": "300"},
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "Traceback" not in out, out
    [run_dir] = runs.iterdir()
    assert f"error: cannot write {run_dir}" in out, out  # the run directory, or the file in it
    assert "No space left on device" in out, out
    first = json.loads((run_dir / "timeline.jsonl").read_text().splitlines()[0])
    mine = {"label": f"tcpscen.run={first['run_id']}"}
    client = connect_engine()
    assert client.api.containers(all=True, filters=mine) == []
    assert client.api.networks(filters=mine) == []
    assert not (run_dir / "verdict.json").exists(), "no verdict from captures cut short"
