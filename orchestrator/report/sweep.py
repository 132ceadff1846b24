"""A sweep's summary: for each run its values, its verdict, and for each host the kernel model's
end beside what was observed; and the model's curve between and around the values that ran.
Written into the sweep's directory as `sweep.json` and `index.html` (`sweep_page.py`).

The curve comes from the kernel model's pure functions (`kernel.curve`) on the settings the
scenario gives at each value of the swept key, the values that are not numbers held as they
ran; it is not fitted to the points. For an RTO abort it needs the RTO the timer had at the
first retransmission: the median of what the runs' captures show.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from orchestrator.kernel.curve import STARTS, abort_after, budget_after, rto_at_stamp
from orchestrator.kernel.predict import KernelPrediction
from orchestrator.kernel.settings import settings_of_host
from orchestrator.run.runner import RunResult
from orchestrator.run.sweep import SweepRuns
from orchestrator.rundir import RunDir
from orchestrator.scenario.matrix import SweepValue
from orchestrator.scenario.sweep import Sweep
from orchestrator.tcp.connection import ConnectionSummary

JSON_FILE = "sweep.json"
INDEX = "index.html"
MAX_SAMPLES = 200  # points of a curve


@dataclass
class HostEnd:
    """One host's end in one run: the model's, and what the capture and the app showed."""

    kind: str
    predicted_s: float
    observed_s: float | None  # the kernel's end as the capture shows it (seen or inferred)
    app_s: float | None  # when the app was told, on the same clock
    app_sees: str | None
    within_tolerance: bool | None
    deviation: float | None
    start: str  # what the times count from
    start_time: float  # epoch seconds
    beyond_capture: bool = False  # the model's end came after the observation ended
    rto_s: float | None = None  # for an RTO abort: the timer's RTO at the first retransmission
    # Other ends the model allows (a knife edge, an orphan's budget), as the run's prediction.
    alternatives: list[float] = field(default_factory=list)
    # Where the packets bound the end but cannot show it (a user timeout's clamp): its bounds.
    observed_window: tuple[float, float] | None = None


@dataclass
class Row:
    label: str
    values: dict[str, SweepValue]  # key -> the value as the file gives it
    settings: dict[str, float | None]  # key -> the value as the model took it (seconds, counts)
    verdict: Literal["PASS", "FAIL", "ERROR"]
    run_dir: str  # relative to the sweep's directory
    report: str | None  # the run's report.html, relative, if it was written
    passed: int = 0
    checks: int = 0
    failed: list[str] = field(default_factory=list)
    error: str | None = None
    ends: dict[str, HostEnd] = field(default_factory=dict)  # host -> its end


@dataclass
class Curve:
    """The model's end for one host and kind, against the key on the x axis, the other keys held."""

    host: str
    kind: str
    held: dict[str, SweepValue]  # the other keys' values
    rto_s: float | None
    points: list[tuple[float, float]]  # (setting, seconds after the kind's start)
    budget: list[tuple[float, float]] = field(default_factory=list)  # an RTO abort's budget itself
    note: str = ""


@dataclass
class Summary:
    name: str
    file: str
    keys: list[str]
    shorts: dict[str, str]  # key -> its name in labels
    x_key: str | None  # the key the plot is drawn against (the first with numbers)
    rows: list[Row]
    curves: list[Curve]
    starts: dict[str, str] = field(default_factory=lambda: dict(STARTS))
    made: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(runs: SweepRuns) -> Summary:
    sweep = runs.sweep
    keys = [k.key for k in sweep.keys]
    rows = [_row(runs.directory, keys, p.values, p.settings, p.label, r) for p, r in runs.runs]
    x_key = next((k for n, k in enumerate(keys) if _numbers(sweep, n)), None)
    curves = _curves(sweep, rows, x_key) if x_key is not None else []
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    shorts = {k.key: k.short for k in sweep.keys}
    return Summary(sweep.name, sweep.file, keys, shorts, x_key, rows, curves, made=made)


def _numbers(sweep: Sweep, n: int) -> bool:
    """Whether the n-th key can be a plot's axis: a number at every point, not always the same."""
    settings = [p.settings[n] for p in sweep.points]
    return all(s is not None for s in settings) and len(set(settings)) > 1


def write_summary(runs: SweepRuns) -> tuple[Path, Path]:
    """sweep.json and index.html in the sweep's directory."""
    from orchestrator.report.sweep_page import render_index  # noqa: PLC0415 - the page imports this module

    summary = summarize(runs)
    # Through the directory's descriptor, new files only, handed to the invoking user (as runs').
    with RunDir.open(runs.directory) as files:
        files.write(JSON_FILE, json.dumps(summary.to_json(), indent=2) + "\n")
        files.write(INDEX, render_index(summary))
        files.hand_over()
    return runs.directory / INDEX, runs.directory / JSON_FILE


def _row(
    directory: Path,
    keys: list[str],
    values: tuple[SweepValue, ...],
    settings: tuple[float | None, ...],
    label: str,
    result: RunResult,
) -> Row:
    verdict = result.verdict
    run_dir = result.run_dir
    rel = str(run_dir.relative_to(directory)) if run_dir.is_relative_to(directory) else str(run_dir)
    report = f"{rel}/report.html" if (run_dir / "report.html").exists() else None
    row = Row(
        label,
        dict(zip(keys, values, strict=True)),
        dict(zip(keys, settings, strict=True)),
        "ERROR" if result.error is not None or verdict is None else ("PASS" if verdict.passed else "FAIL"),
        rel,
        report,
        error=str(result.error) if result.error is not None else None,
    )
    if verdict is None:
        return row
    row.passed, row.checks = verdict.passed_count, len(verdict.checks)
    row.failed = [c.name for c in verdict.checks if not c.passed]
    for host, p in verdict.predictions.items():
        app = verdict.apps.get(host)
        told = app.t - p.start_time if app is not None and app.t is not None else None
        end = HostEnd(
            p.kind,
            p.predicted_s,
            p.observed_s,
            round(told, 6) if told is not None else None,
            app.sees if app is not None else None,
            p.within_tolerance,
            p.deviation,
            p.start,
            p.start_time,
            p.beyond_capture,
            alternatives=list(p.alternatives),
            observed_window=p.observed_window,
        )
        if p.kind == "rto-abort" and verdict.connection is not None:
            end.rto_s = _stamp_rto(verdict.connection, p)
        row.ends[host] = end
    return row


def _stamp_rto(conn: ConnectionSummary, p: KernelPrediction) -> float | None:
    """The RTO at an RTO abort's stamp, from the side's retransmissions from the stamp on (the
    timer's, of the head: nothing else is retransmitted while nothing is acknowledged)."""
    if conn.oldest_unacked_from == p.side and conn.head_frames:
        frames = conn.head_frames
    elif conn.backoff_from == p.side:
        frames = conn.backoff_frames
    else:
        frames = conn.retransmission_frames.of(p.side)
    timer = [f.time for f in frames if f.time >= p.start_time - 1e-6]
    if not timer or abs(timer[0] - p.start_time) > 1e-6:
        return None  # not this prediction's retransmissions (or beyond the evidence kept)
    return rto_at_stamp(timer)


def _curves(sweep: Sweep, rows: list[Row], x_key: str) -> list[Curve]:
    n = next(i for i, k in enumerate(sweep.keys) if k.key == x_key)
    x_leaf = sweep.keys[n]
    xs = _samples([p.settings[n] or 0.0 for p in sweep.points], x_leaf.leaf.kind)
    curves: list[Curve] = []
    pairs = sorted({(h, e.kind) for r in rows for h, e in r.ends.items() if e.kind in STARTS})
    groups = list(dict.fromkeys(tuple(v for i, v in enumerate(p.values) if i != n) for p in sweep.points))
    others = [k.key for i, k in enumerate(sweep.keys) if i != n]
    for host, kind in pairs:
        for group in groups:
            held = dict(zip(others, group, strict=True))
            mine = [r for r in rows if all(r.values[k] == v for k, v in held.items()) and host in r.ends]
            ends = [r.ends[host] for r in mine if r.ends[host].kind == kind]
            rtos = [e.rto_s for e in ends if e.rto_s is not None]
            rto = statistics.median(rtos) if rtos else None
            curve = Curve(host, kind, held, rto, [])
            for x in xs:
                values = [*group[:n], _raw(x, x_leaf.leaf.kind), *group[n:]]
                scenario = sweep.scenario_at(values)
                if scenario is None or host not in scenario.apps():
                    continue  # not a value the scenario takes (keepidle is whole seconds)
                s = settings_of_host(scenario.apps()[host])
                y = abort_after(kind, s, rto)
                if y is not None:
                    curve.points.append((x, round(y, 6)))
                b = budget_after(kind, s)
                if b is not None:
                    curve.budget.append((x, round(b, 6)))
            if kind == "rto-abort" and rto is None:
                curve.note = "no retransmission timer seen in these runs: only the budget is drawn"
            curves.append(curve)
    return curves


def _samples(values: list[float], kind: str) -> list[float]:
    """Where the curve is evaluated: every whole value between the least and the greatest that
    ran (counts, whole seconds), or evenly spread points."""
    lo, hi = min(values), max(values)
    if kind == "int" or all(v == int(v) for v in values):
        step = max(1, int((hi - lo) // MAX_SAMPLES) + 1)
        return [float(v) for v in range(int(lo), int(hi) + 1, step)]
    count = MAX_SAMPLES
    return [lo + (hi - lo) * i / (count - 1) for i in range(count)]


def _raw(x: float, kind: str) -> SweepValue:
    """A sample as the file would write it."""
    if kind == "int":
        return int(x)
    if kind == "duration":
        return f"{x:.6g}s"
    return x
