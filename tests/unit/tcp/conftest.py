"""The analysis tests' captures are small; the columnar passes (vectorised, compiled) must still
run on them, as on big ones: they are what the equivalence tests compare with the reference
loop, which alone would take a small capture (`sizing.LOOP_BYTES`)."""

from __future__ import annotations

import pytest

from orchestrator.tcp import sizing


@pytest.fixture(autouse=True)
def columns_for_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizing, "LOOP_BYTES", 0)
