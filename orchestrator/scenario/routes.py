"""The host's IPv4 routing table, as data: a scenario's subnet must not hide the host's own networks.

Scenario subnets are IPv4 only, so /proc/net/ipv6_route has nothing to say about them.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

ROUTE_TABLE = Path("/proc/net/route")
_RTF_UP = 0x0001
_RTF_GATEWAY = 0x0002
_RTF_REJECT = 0x0200


@dataclass(frozen=True)
class Route:
    interface: str
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None = None

    @property
    def engines(self) -> bool:
        """A route of the Docker engine's bridges: an overlap there is the engine's to refuse, and a
        run then moves to a free subnet; any other interface's route is the host's own."""
        name = self.interface
        return name in ("docker0", "docker_gwbridge") or name.startswith("br-")


def parse_route_table(text: str) -> list[Route]:
    """/proc/net/route's lines: addresses in hex, in the kernel's byte order. Lines that are not
    up, or reject routes, are left out; a malformed line too (the table is only advice)."""
    routes: list[Route] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, gateway, flags, mask = (
                _address(fields[1]),
                _address(fields[2]),
                int(fields[3], 16),
                _address(fields[7]),
            )
            network = ipaddress.IPv4Network(f"{destination}/{mask}", strict=False)
        except ValueError:
            continue
        if not flags & _RTF_UP or flags & _RTF_REJECT:
            continue
        routes.append(Route(fields[0], network, gateway if flags & _RTF_GATEWAY else None))
    return routes


def host_routes(table: Path | None = None) -> list[Route]:
    """The routing table of this machine; none where there is no /proc (not Linux)."""
    try:
        return parse_route_table((table or ROUTE_TABLE).read_text(encoding="ascii", errors="replace"))
    except OSError:
        return []


def _address(hex_text: str) -> ipaddress.IPv4Address:
    if len(hex_text) != 8:
        raise ValueError(hex_text)
    return ipaddress.IPv4Address(int(hex_text, 16).to_bytes(4, sys.byteorder))
