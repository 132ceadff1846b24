"""Run every real-kernel case several times, keep each run's captures as a corpus, and print
the figures: `python -m tests.realkernel.collect [--runs 3] [--out DIR] [case ...]` (as root).

The corpus (one folder per case and run: pcaps + meta.json + figures.json) is for checking the
verdict engine against real kernel behaviour; docs/kernel-facts.md was written from this output.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.realkernel.cases import CASES, run_case
from tests.realkernel.figures import FIGURES, Figures

DEFAULT_OUT = Path("/work/notes/netns-caps")


def run_one(name: str, run: int, out: Path) -> tuple[str, int, Figures]:
    directory = out / f"{name}-{run}"
    result = run_case(name, directory)
    figures = FIGURES[name](result) if name in FIGURES else {}  # a case may keep its captures only
    (directory / "figures.json").write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return name, run, figures


def summarize(rows: list[Figures]) -> dict[str, str]:
    """min-max for numbers, the distinct values for text."""
    summary: dict[str, str] = {}
    for key in rows[0]:
        values = [row[key] for row in rows if key in row]
        if all(isinstance(v, int | float) for v in values):
            low, high = min(values), max(values)
            summary[key] = f"{low:.3f}" if low == high else f"{low:.3f}-{high:.3f}"
            if all(isinstance(v, int) for v in values):
                summary[key] = str(low) if low == high else f"{low}-{high}"
        else:
            summary[key] = " | ".join(sorted({str(v) for v in values}))
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("cases", nargs="*", default=list(CASES))
    args = parser.parse_args(argv)
    jobs = [(name, run) for run in range(1, args.runs + 1) for name in args.cases]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(lambda job: run_one(job[0], job[1], args.out), jobs))
    table = {name: summarize([f for n, _, f in done if n == name]) for name in args.cases}
    (args.out / "summary.json").write_text(json.dumps(table, indent=1) + "\n")
    for name, summary in table.items():
        print(f"## {name}")
        for key, value in summary.items():
            print(f"   {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
