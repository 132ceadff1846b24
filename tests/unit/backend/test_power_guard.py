"""A power step the host's state forbids fails as that step, saying why, and creates nothing:
a power_on of a host that is on would boot a second host container with its address and MAC
(measured on the engine: both kernels answered)."""

from __future__ import annotations

import pytest

from orchestrator.backend.docker.pod import Pod


def _pod(on: bool) -> Pod:
    pod = Pod.__new__(Pod)
    pod.name = "server"
    pod.host = object() if on else None  # type: ignore[assignment]

    def boot() -> None:
        raise AssertionError("booted")

    pod.boot = boot  # type: ignore[method-assign]
    return pod


def test_a_power_on_of_a_host_that_is_on_fails_before_booting() -> None:
    with pytest.raises(RuntimeError, match="server is on: power it off first"):
        _pod(on=True).power_on()


def test_a_power_off_of_a_host_that_is_off_says_so() -> None:
    with pytest.raises(RuntimeError, match="server is off already"):
        _pod(on=False).power_off()
