"""A connection that a NAT moved to another port mid-stream: a later connection with no
handshake whose first segment's sequence and acknowledgement numbers lie inside an earlier
connection's, between the same server endpoint and the same client address.

Measured (netns, `masquerade random` in the router, conntrack established timeout 5 s, the
default nf_conntrack_tcp_loose=1): the client's data after 8 s idle reached the server from a
new source port, continuing the old connection's numbers exactly; the server's kernel, with no
socket for that port, answered with an RST (the client got ECONNRESET) and kept the old
connection ESTABLISHED. Read alone, the later one looks like a connection opened before the
capture, and its RST like a server that lost its socket."""

from __future__ import annotations

from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.flows import M32, Conn, Flow

__all__ = ["link_remapped"]

_NO_SYN = "no SYN captured"
_NO_SOCKET = "the RST has no ACK flag"
_LOOK_BACK = 64


def _inside(value: int, f: Flow) -> bool:
    """Whether `value` lies between `f`'s initial sequence number (its SYN or SYN+ACK: every
    pass keeps those) and its next one, its FIN included."""
    first = f.syn or f.syn_ack
    return first is not None and (value - first.p.seq) & M32 <= (f.nextseq - first.p.seq) & M32


def _continued(c: Conn, earlier: Conn) -> tuple[Flow, Flow] | None:
    """(earlier's flow the first segment of `c` continues, that flow's peer), or None."""
    p = c.first
    for f in (earlier.a, earlier.b):
        peer = f.rev
        moved = f.addr == p.src and f.port != p.sport and (peer.addr, peer.port) == (p.dst, p.dport)
        if moved and _inside(p.seq, f) and _inside(p.ack, peer):
            return f, peer
    return None


def link_remapped(conns: list[Conn], summaries: list[ConnectionSummary]) -> None:
    """Say, on both, that a handshake-less connection is an earlier one under a new port."""
    # Earlier connections by (an endpoint's address, its peer's address and port); only the
    # latest `_LOOK_BACK` of each are tried, so a big capture of such connections stays linear.
    earlier: dict[tuple[str, str, int], list[tuple[Conn, ConnectionSummary]]] = {}
    for c, s in zip(conns, summaries, strict=True):
        p = c.first
        if s.handshake == "missing":
            for old in reversed(earlier.get((p.src, p.dst, p.dport), [])[-_LOOK_BACK:]):
                found = _continued(c, old[0])
                if found is not None:
                    _say(c, s, old[1], found)
                    break
        for f in (c.a, c.b):
            earlier.setdefault((f.addr, f.rev.addr, f.rev.port), []).append((c, s))


def _say(c: Conn, s: ConnectionSummary, e: ConnectionSummary, found: tuple[Flow, Flow]) -> None:
    moved, peer = found
    old = f"{moved.addr}:{moved.port}"
    new = f"{c.first.src}:{c.first.sport}"
    there = f"{peer.addr}:{peer.port}"
    s.notes = [n for n in s.notes if not n.startswith((_NO_SYN, _NO_SOCKET))]
    text = (
        f"no SYN captured, yet its first segment (frame {c.first.frame}) continues connection "
        f"#{e.stream}'s sequence and acknowledgement numbers from {old}: the same connection "
        "under a new port, a NAT on the path that forgot the idle flow and mapped it anew "
        "(nftables `masquerade random`, or a NAT that does not keep ports)"
    )
    if s.rst_from is not None:
        text += (
            f"; {there} has no socket for {new} and answered with an RST of no socket, while "
            f"it still holds connection #{e.stream}"
        )
    s.notes.insert(0, text)
    e.notes.append(f"it went on as connection #{s.stream} from {new}, mapped anew by a NAT")
