"""What a scenario expects the verdict to find: the connection's facts, each app's outcome, and
the expectations of the parts that have their own module (sockets, chosen connections, routers)."""

from __future__ import annotations

import difflib
import errno
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.scenario.base import StrictModel
from orchestrator.scenario.middlebox import MiddleboxExpect
from orchestrator.scenario.selection import ConnectionExpect
from orchestrator.scenario.socket_expect import SocketExpect, SocketState
from orchestrator.scenario.units import Count, Duration, Percent

Side = Literal["client", "server"]


class AppExpect(StrictModel):
    """What an app should have seen: eof, nothing, or an errno name (for a program, from its
    syscall trace); optionally when, and events it must have reported on the way (blocked,
    unblocked, ...). For a program also how it ended: `exits` (0, nonzero or a code), `within` a
    time (after the first fault took effect, or after traffic started if there is none), and
    `output` (a regular expression its stdout or stderr must match)."""

    sees: str | None = None
    at: Literal["predicted"] | Duration | None = None
    reports: list[str] = Field(default_factory=list)
    exits: Literal["nonzero"] | Annotated[int, Field(ge=0, le=255)] | None = None
    within: Duration | None = None
    output: str | None = None

    @field_validator("sees")
    @classmethod
    def _check_sees(cls, value: str | None) -> str | None:
        if value is None or value in ("eof", "nothing") or value in errno.errorcode.values():
            return value
        names = {n.lower(): n for n in (*errno.errorcode.values(), "eof", "nothing")}
        hint = difflib.get_close_matches(value.lower(), list(names), n=1, cutoff=0.75)
        meant = f" (did you mean {names[hint[0]]!r}?)" if hint else ""
        raise ValueError(f"expected eof, nothing or an errno name such as ETIMEDOUT, got {value!r}{meant}")

    @field_validator("output")
    @classmethod
    def _check_output(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check_something(self) -> AppExpect:
        if self.sees is None and self.exits is None and self.output is None and not self.reports:
            raise ValueError("expect at least one of sees, exits, output, reports")
        if self.at is not None and self.sees is None:
            raise ValueError("at says when the app sees something: give sees too")
        if self.within is not None and self.exits is None:
            raise ValueError("within says when the program exits: give exits too")
        return self


class Expect(StrictModel):
    """Facts the verdict must find. Sides are the connection's client (sent the SYN) and server."""

    handshake: Literal["complete", "partial", "missing"] | None = None
    close: Literal["fin", "fin-unanswered", "rst", "none"] | None = None
    initiator: Side | None = None
    close_packets: list[Literal[3, 4]] | None = None
    rst_from: Literal["client", "server", "none"] | None = None
    retransmissions: dict[Side, Count] = Field(default_factory=dict)
    backoff: Literal["doubling"] | None = None
    keepalive_probes: dict[Side, Count] = Field(default_factory=dict)
    keepalive_timing: Literal["predicted"] | None = None
    zero_window: dict[Side, Count] = Field(default_factory=dict)
    apps: dict[str, AppExpect] = Field(default_factory=dict)
    # TCP state of the connection's socket on each side when the observation ends (ss): ESTAB, none, ...
    socket_at_end: dict[Side, SocketState] = Field(default_factory=dict)
    # What the kernels listed over the run (their socket samples): states, timers, counters.
    sockets: list[SocketExpect] = Field(default_factory=list)
    # Segments of the connection sent by either side after the first fault (0: total silence).
    packets_after_fault: Count | None = None
    # Expectations about chosen connections (a pool, several clients): see `selection`.
    connections: list[ConnectionExpect] = Field(default_factory=list)
    # What each router did to the connection (scenario.middlebox.MiddleboxExpect).
    middlebox: dict[str, MiddleboxExpect] = Field(default_factory=dict)
    # RFC 5961 challenge ACKs each side sent (an RST in the window, not at the exact sequence number).
    challenge_acks: dict[Side, Count] = Field(default_factory=dict)
    # The kernel's own counters at the end (nstat, names without Tcp/TcpExt): RetransSegs, ...
    kernel_counters: dict[Side, dict[str, Count]] = Field(default_factory=dict)
    tolerance: Percent = 0.10

    @field_validator("close_packets", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value
