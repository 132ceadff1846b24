"""Expectations about chosen connections: which ones (by host pair, port or order), how many
of them must show the facts (each, any, or a count), and the facts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.scenario.base import StrictModel
from orchestrator.scenario.units import Count, parse_count_range

Side = Literal["client", "server"]


class Select(StrictModel):
    """Which connections: all of them unless narrowed. `client`/`server` name scenario hosts
    (the connection's client sent the SYN); `port` is the server's; `order` the n-th (from 1)
    of those, in the order they started."""

    client: str | None = None
    server: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    order: Annotated[int, Field(ge=1)] | None = None


class ConnectionExpect(StrictModel):
    select: Select = Select()
    # How many of the selected must show every fact below: each (the default), any (at least
    # one), or a count such as 8 or ">=6". A selection that finds nothing fails, whatever this says.
    match: Literal["each", "any"] | Count = "each"
    # How many connections the selection must find (e.g. a pool of 8), if given.
    count: Count | None = None
    handshake: Literal["complete", "partial", "missing"] | None = None
    close: Literal["fin", "fin-unanswered", "rst", "none"] | None = None
    initiator: Side | None = None
    rst_from: Literal["client", "server", "none"] | None = None
    retransmissions: dict[Side, Count] = Field(default_factory=dict)
    keepalive_probes: dict[Side, Count] = Field(default_factory=dict)
    zero_window: dict[Side, Count] = Field(default_factory=dict)

    @field_validator("match", mode="before")
    @classmethod
    def _count_or_word(cls, value: object) -> object:
        return value if value in ("each", "any") else parse_count_range(value)

    @model_validator(mode="after")
    def _check_facts(self) -> ConnectionExpect:
        facts = (self.handshake, self.close, self.initiator, self.rst_from)
        counts = (self.retransmissions, self.keepalive_probes, self.zero_window)
        if all(f is None for f in facts) and not any(counts) and self.count is None:
            raise ValueError("says nothing to check: give a count or a fact (close, rst_from, ...)")
        return self
