from __future__ import annotations

from orchestrator.report.flakiness import assess
from orchestrator.verdict.expectations import Check
from orchestrator.verdict.judge import Verdict


def verdict(*checks: tuple[str, bool, str]) -> Verdict:
    return Verdict("s", [Check(n, p, "x", o) for n, p, o in checks], None, {}, {}, [], None)


def test_same_verdict_every_time_is_stable_even_if_values_move() -> None:
    report = assess("s", [verdict(("gaps", True, "0.41")), verdict(("gaps", True, "0.42"))])
    assert report.stable
    assert report.describe() == "s: the same verdict 2/2 (PASS)"


def test_a_check_that_flips_is_named_with_its_outcomes() -> None:
    fin, rst = ("close", True, "fin"), ("close", False, "rst")
    runs = [verdict(fin), verdict(rst), verdict(fin)]
    report = assess("s", runs)
    assert not report.stable
    assert report.passed == 2
    assert [v.check for v in report.varied] == ["close"]
    assert "2x PASS fin" in report.describe() and "1x FAIL rst" in report.describe()


def test_an_errored_run_is_not_stable() -> None:
    report = assess("s", [verdict(("close", True, "fin")), None])
    assert not report.stable and report.errors == 1
