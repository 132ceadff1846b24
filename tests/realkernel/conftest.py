"""Real-kernel facts in network namespaces: needs root, `ip netns`, nft and tcpdump.

Every case runs in its own namespaces, so the session runs all the selected cases at once in
threads (they mostly wait on kernel timers) and each test then checks its case's result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.netns import CaseResult
from tests.realkernel.cases import CASES, run_case

HERE = Path(__file__).resolve().parent
WORKERS = 8


def why_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "real-kernel tests need root (they create network namespaces)"
    for tool in ("ip", "nft", "tcpdump", "ss", "python3"):
        if shutil.which(tool) is None:
            return f"real-kernel tests need {tool}, which is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()}"
    return None


REASON = why_unavailable()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "realcase(name): the real-kernel case a test reads (cases.CASES)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.netns)
            if REASON:
                item.add_marker(pytest.mark.skip(reason=REASON))


class Cases:
    """The selected tests' cases, all started at once; `get` waits for one."""

    def __init__(self, names: list[str], out: Path) -> None:
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="case")
        self._futures: dict[str, Future[CaseResult]] = {
            name: self._pool.submit(run_case, name, out / name) for name in names
        }

    def get(self, name: str) -> CaseResult:
        return self._futures[name].result(timeout=120)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def cases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cases]:
    names: list[str] = []
    for item in request.session.items:
        for mark in item.iter_markers("realcase"):
            for name in mark.args:
                if name not in CASES:
                    raise ValueError(f"{item.nodeid}: unknown real-kernel case {name!r}")
                if name not in names:
                    names.append(name)
    runner = Cases(names, tmp_path_factory.mktemp("realkernel"))
    yield runner
    runner.close()
