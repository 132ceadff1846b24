"""The kernel's own word on a socket at the end of the run: the state column of `ss -tan`."""

from __future__ import annotations

from typing import get_args

from orchestrator.scenario.model import SocketState

# The names ss prints, as the scenario's `socket_at_end` takes them ("none" is ours: no socket).
STATES = set(get_args(SocketState)) - {"none"}


def socket_state(ss_text: str, local: str, peer: str) -> str:
    """State of the socket local -> peer ("IP:PORT" each), or "none" if the kernel has no such socket."""
    for line in ss_text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] in STATES and fields[3] == local and fields[4] == peer:
            return fields[0]
    return "none"
