"""ICMP errors that quote a TCP segment, for the capture reader: destination unreachable,
time exceeded and parameter problem, the types Linux's tcp_v4_err/tcp_v6_err act on (each
ends a connect, or leaves a soft error on an established connection).

Linux reverts one step of RTO backoff when such an error arrives for a retransmitted segment
(RFC 6069: ICMPv4 net/host unreachable, ICMPv6 no route only: measured on 6.18, ICMPv6
address unreachable leaves the backoff doubling), so the reader reports them next to the TCP
segments. Only frames that are not TCP come here, so this path may be slow; it decodes what it
needs and nothing else.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

__all__ = ["MAX_ICMP", "IcmpError", "icmp4_error", "icmp_error_in_frame"]

# Errors kept per capture (memory bound; the count of the rest is not needed).
MAX_ICMP = 10_000

_U16 = struct.Struct("!H")
_QUOTED_TCP = struct.Struct("!HHI")  # sport, dport, seq: the 8 bytes every error must quote
# The ICMP types kept: v4 destination unreachable, time exceeded, parameter problem; v6 the same.
_TYPES4 = (3, 11, 12)
_TYPES6 = (1, 3, 4)
_UNREACH = {4: 3, 6: 1}  # destination unreachable's type in each version
_NR_ICMP_UNREACH = 15  # Linux ignores ICMPv4 unreachable codes above it


class IcmpError(NamedTuple):
    """An ICMP error about a TCP segment: destination unreachable (ICMPv4 type 3, ICMPv6 type
    1), time exceeded (11, 3) or parameter problem (12, 4)."""

    frame: int
    time: float  # epoch seconds
    src: str  # who reported it: a router, or the sending host itself
    version: int  # 4 or 6
    icmp_type: int  # the ICMP type
    code: int  # ICMP code: v4 0 net, 1 host, 3 port, 13 prohibited; v6 0 no route, 3 address
    tcp_src: str  # the quoted segment: its sender is the side the error is about
    tcp_sport: int
    tcp_dst: str
    tcp_dport: int
    tcp_seq: int
    file: str
    time_ns: int

    @property
    def unreachable(self) -> bool:
        """A destination-unreachable error (not time exceeded or parameter problem)."""
        return self.icmp_type == _UNREACH[self.version]

    @property
    def reverts_backoff(self) -> bool:
        """Whether Linux undoes one RTO backoff step for it (tcp_ld_RTO_revert): ICMPv4 net or
        host unreachable (tcp_v4_err), ICMPv6 no route only (tcp_v6_err)."""
        return self.unreachable and self.code in ((0, 1) if self.version == 4 else (0,))

    @property
    def pmtu(self) -> bool:
        """ICMPv4 fragmentation needed: path-MTU discovery, never an error for the app (the
        ICMPv6 packet too big is not decoded at all)."""
        return self.version == 4 and self.icmp_type == 3 and self.code == 4


# What the decoders return:
# (src, version, type, code, tcp_src, tcp_sport, tcp_dst, tcp_dport, tcp_seq).
Found = tuple[str, int, int, int, str, int, str, int, int]


def icmp4_error(buf: bytes, off: int, end: int) -> Found | None:
    """An IPv4 datagram at buf[off:end] carrying ICMP: the error it reports about TCP, if any."""
    if end - off < 20 or buf[off] >> 4 != 4 or buf[off + 9] != 1:
        return None
    ihl = (buf[off] & 0x0F) * 4
    icmp = off + ihl
    if end - icmp < 8 + 20 + 8 or buf[icmp] not in _TYPES4:
        return None
    if buf[icmp] == 3 and buf[icmp + 1] > _NR_ICMP_UNREACH:
        return None
    q = icmp + 8  # the quoted IPv4 header
    qihl = (buf[q] & 0x0F) * 4
    if buf[q] >> 4 != 4 or buf[q + 9] != 6 or end - (q + qihl) < 8:
        return None
    sport, dport, seq = _QUOTED_TCP.unpack_from(buf, q + qihl)
    return (
        socket.inet_ntoa(buf[off + 12 : off + 16]),
        4,
        buf[icmp],
        buf[icmp + 1],
        socket.inet_ntoa(buf[q + 12 : q + 16]),
        sport,
        socket.inet_ntoa(buf[q + 16 : q + 20]),
        dport,
        seq,
    )


def _icmp6_error(buf: bytes, off: int, end: int) -> Found | None:
    """An IPv6 packet at buf[off:end]: the ICMPv6 error it carries about TCP, if any. Extension
    headers before ICMPv6 are not walked (errors rarely carry any)."""
    if end - off < 40 or buf[off] >> 4 != 6 or buf[off + 6] != 58:
        return None
    icmp = off + 40
    if end - icmp < 8 + 40 + 8 or buf[icmp] not in _TYPES6:
        return None
    q = icmp + 8  # the quoted IPv6 header
    if buf[q] >> 4 != 6 or buf[q + 6] != 6:
        return None
    sport, dport, seq = _QUOTED_TCP.unpack_from(buf, q + 40)
    return (
        _ntop6(buf, off + 8),
        6,
        buf[icmp],
        buf[icmp + 1],
        _ntop6(buf, q + 8),
        sport,
        _ntop6(buf, q + 24),
        dport,
        seq,
    )


def _ntop6(buf: bytes, off: int) -> str:
    return socket.inet_ntop(socket.AF_INET6, buf[off : off + 16])


def _by_ethertype(etype: int, buf: bytes, off: int, end: int) -> Found | None:
    if etype == 0x0800:
        return icmp4_error(buf, off, end)
    if etype == 0x86DD:
        return _icmp6_error(buf, off, end)
    return None


def _by_version(buf: bytes, off: int, end: int) -> Found | None:
    if end <= off:
        return None
    return icmp4_error(buf, off, end) if buf[off] >> 4 == 4 else _icmp6_error(buf, off, end)


def icmp_error_in_frame(linktype: int, buf: bytes, off: int, cap: int) -> Found | None:
    """A captured frame of `linktype` at buf[off:off+cap]: the TCP-related ICMP error in it, if any."""
    end = off + cap
    if linktype == 1:  # Ethernet, with any VLAN tags
        p = off + 12
        while end - p >= 2:
            (etype,) = _U16.unpack_from(buf, p)
            if etype not in (0x8100, 0x88A8, 0x9100):
                return _by_ethertype(etype, buf, p + 2, end)
            p += 4
        return None
    if linktype == 113 and cap >= 16:  # Linux cooked v1
        return _by_ethertype(_U16.unpack_from(buf, off + 14)[0], buf, off + 16, end)
    if linktype == 276 and cap >= 20:  # Linux cooked v2
        return _by_ethertype(_U16.unpack_from(buf, off)[0], buf, off + 20, end)
    if linktype in (101, 12, 14, 228, 229):  # raw IP
        return _by_version(buf, off, end)
    if linktype in (0, 108) and cap >= 4:  # BSD and OpenBSD loopback: the family, then IP
        return _by_version(buf, off + 4, end)
    return None
