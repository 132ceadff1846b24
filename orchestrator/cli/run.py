from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from orchestrator.cli.common import check_writable_dir, load_runs
from orchestrator.cli.run_output import JsonLines, print_line, print_summary, run_json
from orchestrator.errors import EXIT_ENGINE, EXIT_FAIL, EXIT_PASS, TcpscenError, UsageError
from orchestrator.interrupts import Interrupted
from orchestrator.report.terminal import markup_safe

if TYPE_CHECKING:
    from orchestrator.run.runner import RunResult
    from orchestrator.run.sweep import SweepRuns
    from orchestrator.scenario.model import Scenario
    from orchestrator.scenario.sweep import Point, Sweep


@dataclass
class Job:
    """One run to make: its scenario, and its run directory (made when it starts, or already)."""

    scenario: Scenario
    start: Callable[[], RunResult]
    sweep: SweepRuns | None = None
    point: Point | None = None


def run(
    files: Annotated[list[Path], typer.Argument(help="scenario files or folders")],
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="where run directories go")] = Path("runs"),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show every send and receive")] = False,
    brief: Annotated[bool, typer.Option("--brief", help="one line per scenario, then the summary")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=16, help="scenarios run in parallel")] = 1,
    repeat: Annotated[int, typer.Option("--repeat", min=1, max=100, help="run each scenario K times")] = 1,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="also write a junit.xml of every run here, for CI")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="one JSON object per run on stdout, one a line; the rest on stderr"),
    ] = False,
) -> None:
    """Run scenarios on real kernels and judge them (a sweep file: one run per combination of its
    values, and a summary). Exit 0 all pass, 1 a failed expectation, 2 a bad scenario, 3 an
    engine problem."""
    from orchestrator.report.flakiness import assess  # noqa: PLC0415 - keeps other commands' start-up light

    items = load_runs(files)  # every file is checked before any Docker object exists
    check_writable_dir(runs_dir, "--runs-dir")  # and where the runs go, and the junit file
    if junit is not None:
        check_writable_dir(junit.parent, "--junit")
        if junit.is_dir():
            raise UsageError(f"--junit {junit}: is a directory; give the file to write, such as junit.xml")
    # With --json, stdout carries the JSON lines alone: everything for people goes to stderr.
    console = Console(highlight=False, stderr=as_json)
    plan, sweeps = _plan(items, runs_dir, repeat)
    if jobs > 1 or brief or as_json:
        results = _run_brief(plan, jobs, console, JsonLines() if as_json else None)
    else:
        results = [_run_verbose(job, verbose, console) for job in plan]
    if len(results) > 1:
        print_summary(console, results)
    for s in sweeps:
        _summarize_sweep(s, console)
    if junit is not None:
        console.print(f"junit: {markup_safe(str(_write_junit(junit, results)))}", soft_wrap=True)
    if repeat > 1:
        for name in dict.fromkeys(job.scenario.name for job in plan):
            same = [r.verdict for n, r in results if n == name]
            console.print(markup_safe(assess(name, same).describe(), multiline=True))
    raise typer.Exit(_exit_code([r for _, r in results]))


def _plan(items: list[Scenario | Sweep], runs_dir: Path, repeat: int) -> tuple[list[Job], list[SweepRuns]]:
    """Every run, in order: a scenario `repeat` times; a sweep's combinations, each `repeat`
    times, in the sweep's directory (made now, so the summary has a place even if a run fails)."""
    from orchestrator.run.runner import new_run  # noqa: PLC0415
    from orchestrator.run.sweep import new_point_run, new_sweep  # noqa: PLC0415
    from orchestrator.scenario.model import Scenario  # noqa: PLC0415

    plan: list[Job] = []
    sweeps: list[SweepRuns] = []
    for item in items:
        if isinstance(item, Scenario):
            plan += [Job(item, partial(new_run, item, runs_dir)) for _ in range(repeat)]
            continue
        runs = new_sweep(item, runs_dir)
        sweeps.append(runs)
        for point in item.points:
            for k in range(1, repeat + 1):
                made = new_point_run(runs, point, k)
                plan.append(Job(point.scenario, partial(_made, made), runs, point))
    return plan, sweeps


def _timed(job: Job, run: Callable[[RunResult], RunResult]) -> RunResult:
    """The run, with when it started and ended (junit's and --json's durations)."""
    result = job.start()
    result.started = time.time()
    try:
        return run(result)
    finally:
        result.ended = time.time()


def _made(result: RunResult) -> RunResult:
    return result


def _summarize_sweep(runs: SweepRuns, console: Console) -> None:
    from orchestrator.report.sweep import write_summary  # noqa: PLC0415

    try:
        index, data = write_summary(runs)
    except Exception as exc:  # the runs' own verdicts and reports stand without it
        console.print(f"[red]sweep summary not written:[/] {markup_safe(f'{type(exc).__name__}: {exc}')}")
        return
    console.print(f"sweep: {markup_safe(str(index))} ({markup_safe(data.name)})", soft_wrap=True)


def _run_verbose(job: Job, verbose: bool, console: Console) -> tuple[str, RunResult]:
    from orchestrator.backend.docker.lab import Lab  # noqa: PLC0415
    from orchestrator.report.console import ConsoleObserver, print_verdict  # noqa: PLC0415
    from orchestrator.run.runner import run_scenario  # noqa: PLC0415

    scenario = job.scenario
    console.rule(f"[bold]{markup_safe(scenario.name)}")
    result = _timed(job, lambda r: run_scenario(scenario, r, ConsoleObserver(console, verbose), Lab))
    if result.verdict is not None:
        print_verdict(console, result.verdict)
    if result.error is not None:
        console.print(f"[bold red]error:[/] {markup_safe(str(result.error), multiline=True)}")
    console.print(f"run directory: {markup_safe(str(result.run_dir))}", soft_wrap=True)
    return scenario.name, result


def _run_brief(
    plan: list[Job], jobs: int, console: Console, out: JsonLines | None
) -> list[tuple[str, RunResult]]:
    """One line per run as it ends (and its JSON object, with --json). Ctrl-C cancels every run;
    each cleans up after itself."""
    from orchestrator.backend.docker.lab import Lab  # noqa: PLC0415
    from orchestrator.report.console import QuietObserver  # noqa: PLC0415
    from orchestrator.run.runner import run_scenario  # noqa: PLC0415

    cancel = threading.Event()

    def one(job: Job) -> tuple[str, RunResult]:
        result = _timed(job, lambda r: run_scenario(job.scenario, r, QuietObserver(), Lab, cancel))
        print_line(console, job.scenario.name, result)
        if out is not None:
            out.emit(run_json(job.scenario.name, result, job.sweep, job.point))
        return job.scenario.name, result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, job) for job in plan]
        try:
            return [f.result() for f in futures]
        except Interrupted:
            cancel.set()
            for f in futures:
                f.cancel()
            wait(futures)
            raise


def _write_junit(path: Path, results: list[tuple[str, RunResult]]) -> Path:
    """One testsuite per run; runs of the same scenario (--repeat) are numbered."""
    from orchestrator.report.junit import suite, write_junit  # noqa: PLC0415

    totals = {name: sum(1 for n, _ in results if n == name) for name, _ in results}
    seen: dict[str, int] = {}
    suites = []
    for name, r in results:
        seen[name] = seen.get(name, 0) + 1
        label = f"{name} #{seen[name]}" if totals[name] > 1 else name
        checks = r.verdict.checks if r.verdict is not None else None
        notes = r.verdict.notes if r.verdict is not None else None
        error = str(r.error) if r.error is not None else None
        suites.append(suite(label, checks, error=error, notes=notes, run_dir=r.run_dir, seconds=r.seconds))
    return write_junit(path, suites)


def _exit_code(results: list[RunResult]) -> int:
    errors = [r.error for r in results if r.error is not None]
    if errors:
        return max(e.exit_code for e in errors if isinstance(e, TcpscenError)) or EXIT_ENGINE
    return EXIT_PASS if all(r.verdict is not None and r.verdict.passed for r in results) else EXIT_FAIL
