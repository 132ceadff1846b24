"""Expectations on what a host's kernel listed over the run (`expect.sockets`), from its socket
samples (`ss -tanoi` every 0.2 s), not from the packets:

```yaml
expect:
  sockets:
    - {host: client, state: ESTAB, during: until-end}   # once ESTAB, ESTAB in every sample to the end
    - {host: client, reaches: CLOSE-WAIT, of: each}     # each of its connections, at some sample
    - {host: client, reaches: TIME-WAIT}
    - {host: server, never: CLOSE-WAIT}
    - {host: client, timer: on, retrans: ">=4"}         # the retransmission timer, and the kernel's count
```

Each item is about the connections of `host` in the captures (only those with `peer`, or with
`port` at either end, if given); `of: each` (the default) wants every one of them to match,
`any` at least one. A selection that matches no connection fails and says so.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.scenario.base import StrictModel
from orchestrator.scenario.units import Count

SocketState = Literal[
    "ESTAB",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "TIME-WAIT",
    "CLOSE-WAIT",
    "LAST-ACK",
    "CLOSING",
    "none",
]
TimerName = Literal["on", "keepalive", "timewait", "persist"]
# until-end: from its first sample in the state, in that state in every sample to the end;
# throughout: in every sample of its life, and still there at the end; end: in the last sample.
During = Literal["until-end", "throughout", "end"]
CONDITIONS = ("state", "reaches", "never", "timer", "retrans")


class SocketExpect(StrictModel):
    host: str
    peer: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    of: Literal["each", "any"] = "each"
    state: SocketState | None = None
    during: During | None = None
    reaches: SocketState | None = None
    never: SocketState | None = None
    timer: TimerName | None = None
    retrans: Count | None = None

    @field_validator("timer", mode="before")
    @classmethod
    def _yaml_on(cls, value: object) -> object:
        # YAML 1.1 reads a bare `on` as true: `timer: on` means ss's timer:(on,...).
        return "on" if value is True else value

    @model_validator(mode="after")
    def _one_condition(self) -> SocketExpect:
        given = [name for name in CONDITIONS if getattr(self, name) is not None]
        if len(given) != 1:
            said = f"got {', '.join(given)}" if given else "got none"
            raise ValueError(f"give exactly one of {', '.join(CONDITIONS)} ({said})")
        if self.during is not None and self.state is None:
            raise ValueError("during says how long a state lasts: give state too")
        return self

    @property
    def condition(self) -> str:
        return next(name for name in CONDITIONS if getattr(self, name) is not None)

    def describe(self) -> str:
        """The expectation in words, as the verdict table shows it."""
        if self.state is not None:
            how = {"until-end": "until the end", "throughout": "throughout, to the end", "end": "at the end"}
            what = f"{self.state} {how[self.during or 'until-end']}"
        elif self.reaches is not None:
            what = "gone (the kernel forgets it)" if self.reaches == "none" else f"reaches {self.reaches}"
        elif self.never is not None:
            what = f"never {self.never}"
        elif self.timer is not None:
            what = f"timer:({self.timer}) at some sample"
        else:
            what = f"kernel's retransmission count {self.retrans}"
        scope = "each connection" if self.of == "each" else "at least one connection"
        if self.peer is not None:
            scope += f" with {self.peer}"
        if self.port is not None:
            scope += f" on port {self.port}"
        return f"{self.host}: {what} ({scope})"
