"""What an ICMP destination-unreachable tells the app: Linux's icmp_err_convert (IPv4) and
icmpv6_err_convert (IPv6). During connect it ends the connect with this errno; on an
established connection it is a soft error, reported instead of ETIMEDOUT at the RTO abort."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.pcap.icmp import IcmpError
from orchestrator.tcp.connection import ConnectionSummary, Side

# net/ipv4/icmp.c icmp_err_convert[code].errno (type 3, destination unreachable)
ICMP4_ERRNO = {
    0: "ENETUNREACH",
    1: "EHOSTUNREACH",
    2: "ENOPROTOOPT",
    3: "ECONNREFUSED",
    4: "EMSGSIZE",
    5: "EOPNOTSUPP",
    6: "ENETUNREACH",
    7: "EHOSTDOWN",
    8: "ENONET",
    9: "ENETUNREACH",
    10: "EHOSTUNREACH",
    11: "ENETUNREACH",
    12: "EHOSTUNREACH",
    13: "EHOSTUNREACH",
    14: "EHOSTUNREACH",
    15: "EHOSTUNREACH",
}
# net/ipv6/icmp.c tab_unreach[code].err (type 1, destination unreachable)
ICMP6_ERRNO = {
    0: "ENETUNREACH",
    1: "EACCES",
    2: "EHOSTUNREACH",
    3: "EHOSTUNREACH",
    4: "ECONNREFUSED",
    5: "EACCES",
    6: "EACCES",
}
# What each code says, for sentences.
ICMP4_NAMES = {
    0: "net unreachable",
    1: "host unreachable",
    3: "port unreachable",
    13: "administratively prohibited",
}
ICMP6_NAMES = {
    0: "no route",
    1: "administratively prohibited",
    3: "address unreachable",
    4: "port unreachable",
}


def errno_of(e: IcmpError) -> str:
    table = ICMP4_ERRNO if e.version == 4 else ICMP6_ERRNO
    return table.get(e.code, "EHOSTUNREACH")


def name_of(e: IcmpError) -> str:
    names = ICMP4_NAMES if e.version == 4 else ICMP6_NAMES
    kind = names.get(e.code, f"code {e.code}")
    return f"ICMP{'v6' if e.version == 6 else ''} {kind}"


def quoting(icmp: Sequence[IcmpError], conn: ConnectionSummary, side: Side) -> list[IcmpError]:
    """The errors about segments `side` sent (the quoted segment's sender is the side told)."""
    here = conn.client if side == "client" else conn.server
    return [e for e in icmp if _endpoint(e.tcp_src, e.tcp_sport) == here]


def soft_error(icmp: Sequence[IcmpError], conn: ConnectionSummary, side: Side) -> str | None:
    """The errno the last such error leaves for the app, if any came (FRAG_NEEDED is PMTU
    discovery, not an error)."""
    found = [e for e in quoting(icmp, conn, side) if not (e.version == 4 and e.code == 4)]
    return errno_of(found[-1]) if found else None


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
