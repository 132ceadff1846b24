"""`analyze` pauses the cyclic garbage collector while it works. The console script ends the
process once the output is written, so there the collector stays paused: its first collection
would walk every object the analysis made (0.04 s on a million packets). Called in-process, the
command leaves the collector as it found it."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import analyze as command

ROOT = Path(__file__).resolve().parents[3]
CAPTURE = ROOT / "tests/unit/tcp/recorded/pool_cut/a.pcap"

# Counts the collections that start once the command has finished, then runs the console script.
_WATCH = """
import gc, sys
from orchestrator.cli import analyze, entry
def watch(phase, info):
    if phase == "start" and analyze.finished:
        sys.stderr.write("collected after the command\\n")
gc.callbacks.append(watch)
sys.argv = ["tcpscen", "analyze", *sys.argv[1:]]
entry.main()
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_console_script_collects_nothing_after_the_output(jobs: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WATCH, "--json", "-j", jobs, str(CAPTURE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('{"file"')
    assert "collected after" not in done.stderr


def test_called_in_process_the_collector_is_left_on(capsys: pytest.CaptureFixture[str]) -> None:
    assert gc.isenabled()
    command.analyze([CAPTURE], json_out=True)
    assert capsys.readouterr().out.startswith('{"file"')
    assert command.finished
    assert gc.isenabled()


def test_called_in_process_a_paused_collector_stays_paused(capsys: pytest.CaptureFixture[str]) -> None:
    gc.disable()
    try:
        command.analyze([CAPTURE], json_out=True)
        assert not gc.isenabled()
    finally:
        gc.enable()
    capsys.readouterr()
