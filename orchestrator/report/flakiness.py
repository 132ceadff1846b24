"""Repeated runs of one scenario: did every run give the same verdict, and if not, what varied."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from orchestrator.verdict.judge import Verdict


@dataclass
class Variation:
    check: str
    outcomes: Counter[str]  # "PASS observed" -> how many runs

    def describe(self) -> str:
        return f"{self.check}: " + ", ".join(f"{n}x {o}" for o, n in self.outcomes.most_common())


@dataclass
class Flakiness:
    scenario: str
    runs: int
    passed: int
    errors: int
    varied: list[Variation] = field(default_factory=list)

    @property
    def stable(self) -> bool:
        return self.errors == 0 and self.passed in (0, self.runs) and not self.varied

    def describe(self) -> str:
        if self.stable:
            word = "PASS" if self.passed == self.runs else "FAIL"
            return f"{self.scenario}: the same verdict {self.runs}/{self.runs} ({word})"
        head = f"{self.scenario}: FLAKY, {self.passed}/{self.runs} passed" + (
            f", {self.errors} errors" if self.errors else ""
        )
        return "; ".join([head, *(v.describe() for v in self.varied)])


def assess(scenario: str, verdicts: list[Verdict | None]) -> Flakiness:
    """Pass/fail per expectation across runs; an observed value that changes but always passes is not
    flaky (gaps of 0.41 and 0.42 s), only a change of PASS/FAIL is."""
    done = [v for v in verdicts if v is not None]
    report = Flakiness(scenario, len(verdicts), sum(v.passed for v in done), len(verdicts) - len(done))
    names = sorted({c.name for v in done for c in v.checks})
    for name in names:
        outcomes: Counter[str] = Counter()
        for v in done:
            check = next((c for c in v.checks if c.name == name), None)
            if check is None:
                outcomes["missing"] += 1
            else:
                outcomes[f"{'PASS' if check.passed else 'FAIL'} {check.observed}"] += 1
        if len({o.split(" ", 1)[0] for o in outcomes}) > 1:
            report.varied.append(Variation(name, outcomes))
    return report
