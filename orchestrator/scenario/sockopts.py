"""A socket's options, as the agent sets them or a program declares it sets them (for the
kernel model): they override the host's sysctls for that one socket."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.scenario.base import StrictModel, problems_at, with_problems
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

    # Each a field's own check, so that a problem of one option never hides another's.
    @field_validator("keepidle", "keepintvl", "keepalive_period")
    @classmethod
    def _whole_seconds(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and (value < 1 or value != int(value)):
            raise ValueError(f"{info.field_name} is in whole seconds (the kernel's unit), at least 1s")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _period_alone(cls, value: Any, handler: ModelWrapValidatorHandler[SocketOptions]) -> SocketOptions:
        """keepalive_period next to keepidle or keepintvl, told beside the options' own problems
        (even where the one beside it is itself refused): read from the keys given."""
        raw = value if isinstance(value, dict) else {}
        beside = any(raw.get(n) is not None for n in ("keepidle", "keepintvl"))
        if raw.get("keepalive_period") is None or not beside:
            return handler(value)
        why = "keepalive_period sets both keepidle and keepintvl: give one or the other"
        conflict = problems_at(cls.__name__, [("keepalive_period", why, raw["keepalive_period"])])
        try:
            handler(value)
        except ValidationError as exc:
            raise with_problems(exc, conflict) from None
        raise conflict

    @field_validator("rto_max")
    @classmethod
    def _rto_range(cls, value: float | None) -> float | None:
        if value is not None and not 1 <= value <= 120:
            raise ValueError("rto_max (TCP_RTO_MAX_MS) is 1s to 120s: the kernel refuses others")
        return value

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
