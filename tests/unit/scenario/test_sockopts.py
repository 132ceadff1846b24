"""Socket options that load but do nothing: keep-alive timings without SO_KEEPALIVE."""

from __future__ import annotations

from typing import Any

from orchestrator.scenario.sockopts import SocketOptions


def unused(**given: Any) -> str | None:
    return SocketOptions.model_validate(given).keepalive_unused()


def test_keepalive_timings_without_keepalive_are_named() -> None:
    assert unused(keepidle="2s", keepcnt=3) == (
        "keepidle/keepcnt set but SO_KEEPALIVE never enabled (keepalive: true): no keep-alive probes are sent"
    )
    assert unused(keepidle="2s", keepalive=True) is None
    assert unused(keepalive_period="5s") is None  # Go's period enables it
    assert unused(user_timeout="4s") is None
