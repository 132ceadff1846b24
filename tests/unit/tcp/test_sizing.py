"""Small captures take the reference loop without importing numpy; bigger ones the columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.pcap.reader import read_tcp
from orchestrator.tcp import sizing
from orchestrator.tcp.analysis import analyze_capture
from tests.unit.tcp.test_vector import ROOT, _bench

LOOP_BYTES = sizing.LOOP_BYTES  # as shipped (this folder's conftest lowers it in each test)


def _imports(path: Path, *args: str) -> str:
    """What `tcpscen analyze` imported (python -X importtime), in a fresh interpreter."""
    env = {**os.environ, "TCPSCEN_NO_JIT": "1"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "orchestrator", "analyze", *args, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "connection" in done.stdout
    return done.stderr


def test_a_small_capture_never_imports_numpy(tmp_path: Path) -> None:
    small = tmp_path / "small.pcap"
    _bench().write_capture(small, 400, "many", seed=2)
    assert small.stat().st_size < LOOP_BYTES
    assert " numpy" not in _imports(small)
    assert " numpy" not in _imports(small, "--json")


def test_a_bigger_one_is_read_as_columns(tmp_path: Path) -> None:
    big = tmp_path / "big.pcap"
    _bench().write_capture(big, 90_000, "many", seed=2)
    assert big.stat().st_size >= LOOP_BYTES
    assert " numpy" in _imports(big)


def test_the_loop_and_the_columns_say_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.pcap"
    _bench().write_capture(path, 3_000, "many", seed=4)
    columns = analyze_capture(read_tcp(path))  # this folder's conftest: columns at every size
    monkeypatch.setattr(sizing, "LOOP_BYTES", 1 << 40)
    assert sizing.is_small(read_tcp(path))
    looped = analyze_capture(read_tcp(path))
    assert looped == columns
    assert sum(c.retransmissions.client + c.retransmissions.server for c in looped.connections) > 0
