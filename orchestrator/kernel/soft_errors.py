"""What an ICMP error tells the app: Linux's icmp_err_convert (IPv4) and icmpv6_err_convert
(IPv6). During connect it ends the connect with this errno (every code, measured on 6.18); on
an established connection it is a soft error, reported instead of ETIMEDOUT at the RTO abort,
unless an ACK from the peer came after it (tcp_ack clears sk_err_soft: "something worked").
Time exceeded gives EHOSTUNREACH and parameter problem EPROTO (tcp_v4_err, icmpv6_err_convert)."""

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
_TIME_EXCEEDED = {4: 11, 6: 3}
_PARAMETER_PROBLEM = {4: 12, 6: 4}
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
    if e.icmp_type == _TIME_EXCEEDED[e.version]:
        return "EHOSTUNREACH"
    if e.icmp_type == _PARAMETER_PROBLEM[e.version]:
        return "EPROTO"
    if e.version == 4:
        return ICMP4_ERRNO.get(e.code, "EHOSTUNREACH")
    return ICMP6_ERRNO.get(e.code, "EPROTO")  # icmpv6_err_convert's default


def drops_request(e: IcmpError) -> bool:
    """Whether an error about a listener's SYN-ACK drops the half-open request at once
    (tcp_req_err's abort): ICMPv4 net or host unreachable, time exceeded and parameter problem
    (tcp_v4_err); over IPv6 the errors icmpv6_err_convert calls fatal (every unreachable code
    but no route and address unreachable, and parameter problem). Measured on 6.18: v4 host
    unreachable and v6 administratively prohibited stop the SYN-ACKs, v6 address unreachable
    does not."""
    if e.pmtu:
        return False
    if e.version == 4:
        return e.icmp_type in (11, 12) or (e.unreachable and e.code in (0, 1))
    return e.icmp_type == 4 or (e.unreachable and e.code not in (0, 3))


def name_of(e: IcmpError) -> str:
    v6 = "v6" if e.version == 6 else ""
    if e.icmp_type == _TIME_EXCEEDED[e.version]:
        return f"ICMP{v6} time exceeded"
    if e.icmp_type == _PARAMETER_PROBLEM[e.version]:
        return f"ICMP{v6} parameter problem"
    names = ICMP4_NAMES if e.version == 4 else ICMP6_NAMES
    return f"ICMP{v6} {names.get(e.code, f'code {e.code}')}"


def quoting(
    icmp: Sequence[IcmpError], conn: ConnectionSummary, side: Side, *, pmtu: bool = False
) -> list[IcmpError]:
    """The errors about segments `side` sent (the quoted segment's sender is the side told),
    without ICMPv4 fragmentation needed (path-MTU discovery: Linux lowers the MSS, and tells
    the app nothing) unless `pmtu` (any error quoting a send shows that the socket sent it)."""
    here = conn.client if side == "client" else conn.server
    return [e for e in icmp if _endpoint(e.tcp_src, e.tcp_sport) == here and (pmtu or not e.pmtu)]


def soft_error(icmp: Sequence[IcmpError], conn: ConnectionSummary, side: Side) -> str | None:
    """The errno the last such error leaves for the app, if any came since the original send of
    the oldest unacknowledged segment: everything sent before it was acknowledged, and each
    ACK from the peer clears the soft error (an error from a spell that healed is forgotten)."""
    since = conn.oldest_unacked.time if conn.oldest_unacked is not None else float("-inf")
    found = [e for e in quoting(icmp, conn, side) if e.time >= since]
    return errno_of(found[-1]) if found else None


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
