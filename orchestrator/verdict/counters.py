"""The kernel's own counters, beside what the packets show: each host's `nstat` at the end of
the run (its namespace's TCP MIB and TcpExt counters, in `<host>.ss.txt` after ss's table).

Wireshark's counts and the kernel's differ on µs links: many real retransmissions are labelled
"Out-Of-Order" by tshark (TCP-FACTS); the expectations' `retransmissions` count Wireshark's, and
`kernel_counters` the kernel's (RetransSegs, TCPFastRetrans, TCPSackRecovery, TCPLossProbes...).
"""

from __future__ import annotations

import re

from orchestrator.scenario.model import Scenario, Side
from orchestrator.verdict import expectations as c

NSTAT_MARK = "# nstat"
_LINE = re.compile(r"^(TcpExt|Tcp)(\w+)\s+(\d+)")
SHOWN = ("RetransSegs", "TCPFastRetrans", "TCPSackRecovery", "TCPSACKReorder", "TCPLossProbes", "TCPTimeouts")


def parse_nstat(text: str) -> dict[str, int]:
    """Counter name (without Tcp/TcpExt) -> value, from the nstat part of a host's ss text."""
    _, _, nstat = text.partition(NSTAT_MARK)
    out: dict[str, int] = {}
    for line in nstat.splitlines():
        m = _LINE.match(line.strip())
        if m:
            out[m[2]] = int(m[3])
    return out


def counter_notes(side_host: dict[Side, str], sockets: dict[str, str]) -> list[str]:
    out = []
    for side, host in side_host.items():
        counts = parse_nstat(sockets.get(host, ""))
        shown = [f"{name} {counts[name]}" for name in SHOWN if counts.get(name)]
        if shown:
            out.append(f"kernel counters, {host} ({side}): " + ", ".join(shown) + f" (nstat, {host}.ss.txt)")
    return out


def counter_checks(scenario: Scenario, side_host: dict[Side, str], sockets: dict[str, str]) -> list[c.Check]:
    out: list[c.Check] = []
    for side, wanted in scenario.expect.kernel_counters.items():
        host = side_host[side]
        counts = parse_nstat(sockets.get(host, ""))
        for name, bound in wanted.items():
            value = counts.get(name)
            out.append(
                c.Check(
                    f"kernel_counters.{side}.{name}",
                    value is not None and bound.contains(value),
                    str(bound),
                    "not counted" if value is None else str(value),
                    [f"{host}.ss.txt: nstat {name}"],
                )
            )
    return out
