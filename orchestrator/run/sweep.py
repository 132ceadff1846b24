"""Where a sweep's runs go: one directory for the sweep under the runs directory, holding a run
directory per combination (named after its values) and, once they are done, the summary."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator.run.runner import RunResult
from orchestrator.rundir import RunDir, make_dirs
from orchestrator.scenario.sweep import Point, Sweep

_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=-]+")


@dataclass
class SweepRuns:
    sweep: Sweep
    directory: Path
    # Each combination's runs (several with --repeat), in the order they were made.
    runs: list[tuple[Point, RunResult]] = field(default_factory=list)


def new_sweep(sweep: Sweep, runs_root: Path) -> SweepRuns:
    """The sweep's directory, `runs/<sweep>-<time>` (with a suffix if that is taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    make_dirs(runs_root)
    directory = runs_root / f"{_slug(sweep.name)}-{stamp}"
    try:
        _make_dir(directory)
    except FileExistsError:
        directory = runs_root / f"{_slug(sweep.name)}-{stamp}-{secrets.token_hex(2)}"
        _make_dir(directory)
    return SweepRuns(sweep, directory)


def new_point_run(runs: SweepRuns, point: Point, repeat: int = 1) -> RunResult:
    """A run directory for one combination: `tcp_retries2=3`, or `tcp_retries2=3-run2` for its
    second run with --repeat. Its run id (the engine objects' label) stays within [a-z0-9_-]."""
    name = _UNSAFE.sub("-", point.label).strip("-")[:80] or "run"
    run_dir = runs.directory / (name if repeat == 1 else f"{name}-run{repeat}")
    _make_dir(run_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = f"{_slug(f'{runs.sweep.name}-{point.label}')}-{stamp}-{secrets.token_hex(2)}"
    result = RunResult(run_id=run_id, run_dir=run_dir)
    runs.runs.append((point, result))
    return result


def _make_dir(path: Path) -> None:
    """A new directory (never an existing one, nor through a symlink) that no one else may
    write into, made as a run's is (`rundir.RunDir`)."""
    RunDir.create(path).close()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")[:40] or "sweep"
