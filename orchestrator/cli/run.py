from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli.common import check_writable_dir, load_all
from orchestrator.errors import EXIT_ENGINE, EXIT_FAIL, EXIT_PASS, TcpscenError, UsageError
from orchestrator.interrupts import Interrupted
from orchestrator.report.terminal import markup_safe

if TYPE_CHECKING:
    from orchestrator.run.runner import RunResult
    from orchestrator.scenario.model import Scenario


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
) -> None:
    """Run scenarios on real kernels and judge them. Exit 0 all pass, 1 a failed expectation,
    2 a bad scenario, 3 an engine problem."""
    from orchestrator.report.flakiness import assess  # noqa: PLC0415 - keeps other commands' start-up light

    scenarios = load_all(files)  # every file is checked before any Docker object exists
    check_writable_dir(runs_dir, "--runs-dir")  # and where the runs go, and the junit file
    if junit is not None:
        check_writable_dir(junit.parent, "--junit")
        if junit.is_dir():
            raise UsageError(f"--junit {junit}: is a directory; give the file to write, such as junit.xml")
    console = Console(highlight=False)
    plan = [s for s in scenarios for _ in range(repeat)]
    if jobs > 1 or brief:
        results = _run_brief(plan, runs_dir, jobs, console)
    else:
        results = [_run_verbose(s, runs_dir, verbose, console) for s in plan]
    if len(results) > 1:
        _print_summary(console, results)
    if junit is not None:
        console.print(f"junit: {markup_safe(str(_write_junit(junit, results)))}")
    if repeat > 1:
        for scenario in scenarios:
            same = [r.verdict for name, r in results if name == scenario.name]
            console.print(markup_safe(assess(scenario.name, same).describe(), multiline=True))
    raise typer.Exit(_exit_code([r for _, r in results]))


def _run_verbose(
    scenario: Scenario, runs_dir: Path, verbose: bool, console: Console
) -> tuple[str, RunResult]:
    from orchestrator.backend.docker.lab import Lab  # noqa: PLC0415
    from orchestrator.report.console import ConsoleObserver, print_verdict  # noqa: PLC0415
    from orchestrator.run.runner import new_run, run_scenario  # noqa: PLC0415

    console.rule(f"[bold]{markup_safe(scenario.name)}")
    result = run_scenario(scenario, new_run(scenario, runs_dir), ConsoleObserver(console, verbose), Lab)
    if result.verdict is not None:
        print_verdict(console, result.verdict)
    if result.error is not None:
        console.print(f"[bold red]error:[/] {markup_safe(str(result.error), multiline=True)}")
    console.print(f"run directory: {markup_safe(str(result.run_dir))}")
    return scenario.name, result


def _run_brief(
    plan: list[Scenario], runs_dir: Path, jobs: int, console: Console
) -> list[tuple[str, RunResult]]:
    """One line per run as it ends. Ctrl-C cancels every run; each cleans up after itself."""
    from orchestrator.backend.docker.lab import Lab  # noqa: PLC0415
    from orchestrator.report.console import QuietObserver  # noqa: PLC0415
    from orchestrator.run.runner import new_run, run_scenario  # noqa: PLC0415

    cancel = threading.Event()

    def one(scenario: Scenario) -> tuple[str, RunResult]:
        result = run_scenario(scenario, new_run(scenario, runs_dir), QuietObserver(), Lab, cancel)
        console.print(_one_line(scenario.name, result))
        return scenario.name, result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, s) for s in plan]
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
        suites.append(suite(label, checks, error=error, notes=notes, run_dir=r.run_dir))
    return write_junit(path, suites)


def _one_line(name: str, r: RunResult) -> str:
    name = markup_safe(f"{name:<22}")
    if r.error is not None:
        return f"[red]ERROR[/] {name} {markup_safe(str(r.error))}"
    assert r.verdict is not None
    mark = "[green]PASS[/] " if r.verdict.passed else "[red]FAIL[/] "
    failed = [c.name for c in r.verdict.checks if not c.passed]
    detail = f"{r.verdict.passed_count}/{len(r.verdict.checks)}" + (
        f"  failed: {', '.join(failed)}" if failed else ""
    )
    return f"{mark}{name} {markup_safe(detail)}  {markup_safe(str(r.run_dir))}"


def _exit_code(results: list[RunResult]) -> int:
    errors = [r.error for r in results if r.error is not None]
    if errors:
        return max(e.exit_code for e in errors if isinstance(e, TcpscenError)) or EXIT_ENGINE
    return EXIT_PASS if all(r.verdict is not None and r.verdict.passed for r in results) else EXIT_FAIL


def _print_summary(console: Console, results: list[tuple[str, RunResult]]) -> None:
    table = Table(title="summary")
    table.add_column("scenario")
    table.add_column("verdict")
    table.add_column("expectations")
    table.add_column("run directory")
    for name, r in results:
        shown, run_dir = markup_safe(name), markup_safe(str(r.run_dir))
        if r.error is not None:
            table.add_row(shown, "[red]ERROR[/]", markup_safe(str(r.error)[:60]), run_dir)
        elif r.verdict is not None:
            mark = "[green]PASS[/]" if r.verdict.passed else "[red]FAIL[/]"
            table.add_row(shown, mark, f"{r.verdict.passed_count}/{len(r.verdict.checks)}", run_dir)
    console.print(table)
    passed = sum(1 for _, r in results if r.verdict is not None and r.verdict.passed and r.error is None)
    console.print(f"{passed}/{len(results)} scenarios passed")
