"""Files made from a finished run for people and tools: written after the verdict, in the run directory."""

from __future__ import annotations

from pathlib import Path

from orchestrator.scenario.model import Scenario
from orchestrator.verdict.judge import RunRecord, Verdict


def write_artifacts(run_dir: Path, scenario: Scenario, verdict: Verdict, record: RunRecord) -> list[str]:
    """Write the run's reports; return the names written. (report.html, junit.xml, annotated pcapng.)"""
    return []
