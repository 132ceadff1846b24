"""A socket's options, as the agent sets them or a program declares it sets them (for the
kernel model): they override the host's sysctls for that one socket."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from orchestrator.scenario.base import StrictModel
from orchestrator.scenario.units import Duration


class SocketOptions(StrictModel):
    """Per-socket options; they override the host's sysctls for this one socket."""

    keepalive: bool = False
    keepidle: Duration | None = None
    keepintvl: Duration | None = None
    keepcnt: Annotated[int, Field(ge=1, le=127)] | None = None
    # Go's SetKeepAlivePeriod(d): idle = interval = d, the count stays the system's.
    keepalive_period: Duration | None = None
    user_timeout: Duration | None = None
    rto_max: Duration | None = None  # TCP_RTO_MAX_MS: the RTO's ceiling (kernels from 6.15)
    linger: Duration | None = None
    nodelay: bool = False

    @model_validator(mode="after")
    def _check_keepalive(self) -> SocketOptions:
        if self.keepalive_period is not None and (self.keepidle is not None or self.keepintvl is not None):
            raise ValueError("keepalive_period sets both keepidle and keepintvl: give one or the other")
        for name in ("keepidle", "keepintvl", "keepalive_period"):
            value = getattr(self, name)
            if value is not None and (value < 1 or value != int(value)):
                raise ValueError(f"{name} is in whole seconds (the kernel's unit), at least 1s")
        if self.rto_max is not None and not 1 <= self.rto_max <= 120:
            raise ValueError("rto_max (TCP_RTO_MAX_MS) is 1s to 120s: the kernel refuses others")
        return self

    def keepalive_unused(self) -> str | None:
        """Keep-alive timings set on a socket that never enables SO_KEEPALIVE: legal (the kernel
        keeps them), but no probe is ever sent. A sentence to warn with, or None."""
        given = [n for n in ("keepidle", "keepintvl", "keepcnt") if getattr(self, n) is not None]
        if not given or self.effective_keepalive:
            return None
        return (
            f"{'/'.join(given)} set but SO_KEEPALIVE never enabled (keepalive: true): no keep-alive "
            "probes are sent"
        )

    @property
    def effective_keepalive(self) -> bool:
        return self.keepalive or self.keepalive_period is not None

    @property
    def effective_keepidle(self) -> float | None:
        return self.keepalive_period if self.keepalive_period is not None else self.keepidle

    @property
    def effective_keepintvl(self) -> float | None:
        return self.keepalive_period if self.keepalive_period is not None else self.keepintvl
