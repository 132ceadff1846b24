"""The abuse suite throws hostile and clumsy input at the real CLI, as a child process with a
time limit and an address-space limit: a regression fails a test instead of the machine."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1024 * 1024 * 1024  # bytes of address space: a validate run needs about 300 MB
HARD_TIMEOUT = 20.0  # seconds: past this the child is killed (a FIFO that hangs, say)


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str
    seconds: float


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def tcpscen(*args: str | Path, cwd: Path = ROOT) -> Done:
    """The CLI on its own: DOCKER_HOST points nowhere, so reaching the engine would be exit 3."""
    env = {
        **os.environ,
        "COLUMNS": "300",
        "DOCKER_HOST": "tcp://127.0.0.1:9",
        "OPENBLAS_NUM_THREADS": "1",  # numpy's thread buffers count against the address space
        "PYTHONPATH": str(ROOT),
    }
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=HARD_TIMEOUT,
        env=env,
        preexec_fn=_limit_memory,  # runs in the child before exec: it limits only the child
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr, time.monotonic() - start)


@pytest.fixture(scope="session")
def quick() -> float:
    """How long a refusal may take: about what a valid file's check takes here, plus a second.
    (The interpreter's start-up is most of it; the regressions took minutes, or forever.)"""
    goods = [tcpscen("validate", ROOT / "scenarios" / "power_cut.yaml") for _ in range(3)]
    assert all(good.code == 0 for good in goods), goods[0].stderr
    # The slowest of three: a busy machine (another suite beside this one) slows every start.
    return 2 * max(good.seconds for good in goods) + 1.0
