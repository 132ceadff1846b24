"""Link and network layers of a captured frame, decoded to the TCP fields the analysis needs.

`Link` says how to decode one link type: `decode` walks any frame (VLAN tags, IPv4 options,
IPv6 extension headers, BSD loopback, ...); `fast` unpacks link + plain IPv4 + TCP headers in
one call for Ethernet and the Linux cooked headers; `hdr_len` and `etype_off` tell the column
reader where a plain IPv4 header sits. Used by both capture readers (`reader`, `columns`).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable

__all__ = ["Decoder", "Fields", "Link", "ip4_names"]

# Link types
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
_VLAN_TYPES = (0x8100, 0x88A8, 0x9100)

# Fixed 20-byte IPv4 header (no options) followed by the first 16 bytes of TCP:
# ver_ihl, total_len, frag, proto, src, dst, sport, dport, seq, ack, off_flags, window.
_IP4_TCP = "BxH2xHxB2xIIHHIIHH"
_IP4 = struct.Struct("!BxH2xHxB2xII")
_IP6 = struct.Struct("!4xHBx16s16s")
_TCP = struct.Struct("!HHIIHH")
_U16 = struct.Struct("!H")
_U16LE = struct.Struct("<H")
_U32LE = struct.Struct("<I")
_U32BE = struct.Struct("!I")

_CACHE_MAX = 1 << 16


class _Ip4Names(dict[int, str]):
    """Dotted names of IPv4 addresses, made once: `names[addr]` is the cheapest lookup."""

    def __missing__(self, addr: int) -> str:
        if len(self) >= _CACHE_MAX:
            self.clear()
        s = self[addr] = socket.inet_ntoa(_U32BE.pack(addr))
        return s


ip4_names = _Ip4Names()
_ip6_cache: dict[bytes, str] = {}


def _ip4(addr: int) -> str:
    return ip4_names[addr]


def _ip6(addr: bytes) -> str:
    s = _ip6_cache.get(addr)
    if s is None:
        if len(_ip6_cache) >= _CACHE_MAX:
            _ip6_cache.clear()
        s = _ip6_cache[addr] = ipaddress.IPv6Address(addr).compressed
    return s


# What a general decoder returns: (src, sport, dst, dport, seq, ack, flags, window, payload_len).
Fields = tuple[str, int, str, int, int, int, int, int, int]
# A general decoder: (buffer, offset of the frame, captured length, original length) -> Fields | None.
Decoder = Callable[[bytes, int, int, int], "Fields | None"]


def _tcp_at(buf: bytes, off: int, end: int, seg_len: int, src: str, dst: str) -> Fields | None:
    """TCP header at buf[off:]; `end`: end of the captured data; `seg_len`: the IP-claimed TCP length."""
    if end - off < 16:
        return None  # header cut by the snaplen: no flags to analyse
    sport, dport, seq, ack, offflags, win = _TCP.unpack_from(buf, off)
    hlen = (offflags >> 12) * 4
    if hlen < 20 or seg_len < hlen:
        return None  # malformed: Wireshark does not analyse these either
    return (src, sport, dst, dport, seq, ack, offflags & 0x0FFF, win, seg_len - hlen)


def _ipv4(buf: bytes, off: int, end: int, orig_end: int) -> Fields | None:
    if end - off < 20:
        return None
    vihl, total, frag, proto, src, dst = _IP4.unpack_from(buf, off)
    if vihl >> 4 != 4 or proto != 6 or frag & 0x1FFF:
        return None
    ihl = (vihl & 0x0F) * 4
    if ihl < 20:
        return None
    if total == 0:  # TSO on the capturing host: the length is the frame's
        total = orig_end - off
    if total < ihl:
        return None
    return _tcp_at(buf, off + ihl, end, total - ihl, _ip4(src), _ip4(dst))


_IP6_EXT_GENERIC = (0, 43, 60)  # hop-by-hop, routing, destination options


def _ipv6(buf: bytes, off: int, end: int, orig_end: int) -> Fields | None:
    if end - off < 40 or buf[off] >> 4 != 6:
        return None
    plen, nxt, src, dst = _IP6.unpack_from(buf, off)
    if plen == 0:  # jumbogram or TSO: fall back to the frame length
        plen = orig_end - off - 40
    p = off + 40
    remaining = plen
    while nxt != 6:
        if end - p < 8:
            return None
        if nxt in _IP6_EXT_GENERIC:
            hl = (buf[p + 1] + 1) * 8
        elif nxt == 44:  # fragment
            if _U16.unpack_from(buf, p + 2)[0] & 0xFFF8:
                return None  # not the first fragment
            hl = 8
        elif nxt == 51:  # AH
            hl = (buf[p + 1] + 2) * 4
        else:
            return None  # not TCP (or ESP, no next header, ...)
        nxt = buf[p]
        p += hl
        remaining -= hl
    if remaining < 0:
        return None
    return _tcp_at(buf, p, end, remaining, _ip6(src), _ip6(dst))


def _by_ethertype(etype: int, buf: bytes, off: int, end: int, orig_end: int) -> Fields | None:
    if etype == ETH_IPV4:
        return _ipv4(buf, off, end, orig_end)
    if etype == ETH_IPV6:
        return _ipv6(buf, off, end, orig_end)
    return None


def _ethernet(buf: bytes, off: int, cap: int, orig: int) -> Fields | None:
    end = off + cap
    p = off + 12
    if end - p < 2:
        return None
    (etype,) = _U16.unpack_from(buf, p)
    p += 2
    while etype in _VLAN_TYPES:
        if end - p < 4:
            return None
        (etype,) = _U16.unpack_from(buf, p + 2)
        p += 4
    return _by_ethertype(etype, buf, p, end, off + orig)


def _cooked(etype_off: int, hdr_len: int) -> Decoder:
    def decode(buf: bytes, off: int, cap: int, orig: int) -> Fields | None:
        if cap < hdr_len:
            return None
        (etype,) = _U16.unpack_from(buf, off + etype_off)
        return _by_ethertype(etype, buf, off + hdr_len, off + cap, off + orig)

    return decode


def _raw(buf: bytes, off: int, cap: int, orig: int) -> Fields | None:
    if cap < 1:
        return None
    v = buf[off] >> 4
    if v == 4:
        return _ipv4(buf, off, off + cap, off + orig)
    if v == 6:
        return _ipv6(buf, off, off + cap, off + orig)
    return None


def _ipv4_only(buf: bytes, off: int, cap: int, orig: int) -> Fields | None:
    return _ipv4(buf, off, off + cap, off + orig)


def _ipv6_only(buf: bytes, off: int, cap: int, orig: int) -> Fields | None:
    return _ipv6(buf, off, off + cap, off + orig)


def _by_family(fam: int, buf: bytes, off: int, cap: int, orig: int) -> Fields | None:
    if fam == 2:
        return _ipv4(buf, off + 4, off + cap, off + orig)
    if fam in (10, 24, 28, 30):  # AF_INET6 on Linux, Net/OpenBSD, FreeBSD, macOS
        return _ipv6(buf, off + 4, off + cap, off + orig)
    return None


def _null(buf: bytes, off: int, cap: int, orig: int) -> Fields | None:
    """BSD loopback: the address family in the capturing host's byte order."""
    if cap < 4:
        return None
    (fam,) = _U32LE.unpack_from(buf, off)
    if fam > 0xFFFF:
        fam = int.from_bytes(fam.to_bytes(4, "little"), "big")
    return _by_family(fam, buf, off, cap, orig)


def _loop(buf: bytes, off: int, cap: int, orig: int) -> Fields | None:
    """OpenBSD loopback: the address family in network byte order."""
    if cap < 4:
        return None
    return _by_family(_U32BE.unpack_from(buf, off)[0], buf, off, cap, orig)


def _unsupported(buf: bytes, off: int, cap: int, orig: int) -> Fields | None:
    return None


def _ip_start(linktype: int, buf: bytes, off: int, end: int) -> int | None:
    """Where the IP header of a frame of `linktype` starts (None: not IP, or not found)."""
    p: int | None = None
    if linktype == LINKTYPE_ETHERNET:
        p = off + 12
        while end - p >= 2 and _U16.unpack_from(buf, p)[0] in _VLAN_TYPES:
            p += 4
        return p + 2 if end - p >= 2 and _U16.unpack_from(buf, p)[0] in (ETH_IPV4, ETH_IPV6) else None
    cooked = _COOKED.get(linktype)
    if cooked is not None:
        etype_off, p = cooked
        ok = end - off >= p and _U16.unpack_from(buf, off + etype_off)[0] in (ETH_IPV4, ETH_IPV6)
        return off + p if ok else None
    if linktype in (LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return off
    return off + 4 if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP) else None


def header_cut(linktype: int, buf: bytes, off: int, cap: int, orig: int) -> bool:
    """Whether a frame the decoders returned nothing for is a TCP segment whose header the
    snap length cut before its window (`_tcp_at` needs 16 bytes): `tcpdump -i any -s 54` leaves
    14 with the 20-byte cooked header. Such segments are not analysed; the reader counts them,
    so that the analysis can say why it saw fewer segments than the file holds. IPv6: only a
    TCP header straight after the fixed header (extension headers are rare)."""
    end = off + cap
    if cap >= orig:
        return False  # the whole frame is there: malformed, not cut
    p = _ip_start(linktype, buf, off, end)
    if p is None or end - p < 20:
        return False
    v = buf[p] >> 4
    if v == 4:
        ihl = (buf[p] & 0x0F) * 4
        _, _, frag, proto, _, _ = _IP4.unpack_from(buf, p)
        return proto == 6 and ihl >= 20 and not frag & 0x1FFF and end - (p + ihl) < 16
    if v == 6 and end - p >= 40:
        return buf[p + 6] == 6 and end - (p + 40) < 16
    return False


# Link types with an ethertype-like field: (offset of that field, header length).
_COOKED = {LINKTYPE_ETHERNET: (12, 14), LINKTYPE_LINUX_SLL: (14, 16), LINKTYPE_LINUX_SLL2: (0, 20)}
_DECODERS: dict[int, Decoder] = {
    LINKTYPE_ETHERNET: _ethernet,
    LINKTYPE_LINUX_SLL: _cooked(14, 16),
    LINKTYPE_LINUX_SLL2: _cooked(0, 20),
    LINKTYPE_RAW: _raw,
    12: _raw,
    14: _raw,
    LINKTYPE_IPV4: _ipv4_only,
    LINKTYPE_IPV6: _ipv6_only,
    LINKTYPE_NULL: _null,
    LINKTYPE_LOOP: _loop,
}
# Link types that are raw IP: the IPv4 header starts the frame.
_RAW_IP_HDR = {LINKTYPE_RAW: 0, 12: 0, 14: 0, LINKTYPE_IPV4: 0}
_FastUnpack = Callable[[bytes, int], tuple[int, ...]]


def _no_fast(buf: bytes, off: int) -> tuple[int, ...]:
    raise AssertionError("no fast path for this link type")


class Link:
    """How to decode one link type.

    ``fast`` unpacks link header + plain IPv4 header (no options) + TCP header in
    one call, for Ethernet and the Linux cooked headers; the record loops inline
    it. ``decode`` is the general path for everything else (VLAN tags, IPv4
    options, IPv6, other link types)."""

    __slots__ = ("decode", "etype_off", "fast", "hdr", "hdr_len", "linktype", "need")

    def __init__(self, linktype: int) -> None:
        self.linktype = linktype
        self.decode: Decoder = _DECODERS.get(linktype, _unsupported)
        cooked = _COOKED.get(linktype)
        # For the column reader: where a plain IPv4 header starts (None: nowhere fixed), and
        # where the ethertype in front of it is (None: none, the link is raw IP).
        self.hdr_len: int | None = _RAW_IP_HDR.get(linktype)
        self.etype_off: int | None = None
        if cooked is not None:
            self.etype_off, self.hdr_len = cooked
        self.fast: _FastUnpack = _no_fast
        self.need = 1 << 62  # never: the fast path is off
        self.hdr = 0
        if cooked is not None:
            etype_off, hdr = cooked
            st = struct.Struct(f"!{etype_off}xH{hdr - etype_off - 2}x{_IP4_TCP}")
            self.fast = st.unpack_from
            self.need = st.size
            self.hdr = hdr
