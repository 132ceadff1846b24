"""Runs last (`last(2)`): nothing labelled tcpscen.run may remain after the suite's runs."""

from __future__ import annotations

import pytest

from orchestrator.backend.docker.cleanup import leftovers
from orchestrator.backend.docker.engine import connect_engine

pytestmark = [pytest.mark.engine, pytest.mark.last(2)]


def test_nothing_labelled_is_left() -> None:
    containers, networks = leftovers(connect_engine())
    assert (containers, networks) == (0, 0)
