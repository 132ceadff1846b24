"""What happened to each segment inside a router, from the router's own captures: one per
network, each on its own interface, so a packet forwarded from the inside to the outside is in
both files (NAT may have rewritten its addresses and ports, never its sequence numbers).

* **Forwarded**: a packet that came in on one network and went out on another: the same
  sequence number, ACK, flags and length, leaving within `FORWARD_NS` of its arrival.
* **Died in the router**: came in, never went out (a forgotten flow's packet dropped, a cut
  behind the router).
* **Forged by the router**: went out, never came in (a reset-both RST, an injected segment).

Forwarded pairs also join the two 4-tuples of a connection seen through NAT (`NatJoin`): the
client's (inside) and the server's (outside) become one connection, in the client's terms.
In a router's capture, a packet came in on that network if its source is another host there;
any other packet on that interface went out of the router.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.pcap.reader import TcpPacket, read_tcp

FORWARD_NS = 50_000_000  # a router forwards in microseconds; 50 ms covers a loaded machine
Endpoint = tuple[str, int]
Directed = tuple[str, int, str, int]  # src, sport, dst, dport


@dataclass(frozen=True)
class RouterCapture:
    router: str
    network: str
    path: Path
    neighbours: frozenset[str]  # the other hosts' addresses on this network


@dataclass(frozen=True)
class Seen:
    """One packet in one router capture."""

    router: str
    network: str
    packet: TcpPacket


@dataclass
class RouterPaths:
    forwarded: list[tuple[Seen, Seen]] = field(default_factory=list)  # (in, out)
    died: list[Seen] = field(default_factory=list)
    forged: list[Seen] = field(default_factory=list)


def directed(p: TcpPacket) -> Directed:
    return (p.src, p.sport, p.dst, p.dport)


def _key(p: TcpPacket) -> tuple[int, int, int, int]:
    return (p.seq, p.ack, p.flags, p.payload_len)


def trace_router(captures: list[RouterCapture]) -> RouterPaths:
    """Forwarded, died and forged packets of one router, from its captures (one per network)."""
    incoming: list[Seen] = []
    outgoing: list[Seen] = []
    for cap in captures:
        for p in read_tcp(cap.path):
            seen = Seen(cap.router, cap.network, p)
            (incoming if p.src in cap.neighbours else outgoing).append(seen)
    by_key: dict[tuple[int, int, int, int], list[tuple[int, int]]] = {}
    for i, s in enumerate(incoming):
        by_key.setdefault(_key(s.packet), []).append((s.packet.time_ns, i))
    for times in by_key.values():
        times.sort()
    used: set[int] = set()
    out = RouterPaths()
    for o in sorted(outgoing, key=lambda s: s.packet.time_ns):
        arrivals = by_key.get(_key(o.packet), [])
        j = bisect.bisect_right(arrivals, (o.packet.time_ns, len(incoming))) - 1
        match = None
        while j >= 0 and o.packet.time_ns - arrivals[j][0] <= FORWARD_NS:
            k = arrivals[j][1]
            if k not in used and incoming[k].network != o.network:
                match = k
                break
            j -= 1
        if match is None:
            out.forged.append(o)
        else:
            used.add(match)
            out.forwarded.append((incoming[match], o))
    out.died = [s for i, s in enumerate(incoming) if i not in used]
    return out


class NatJoin:
    """The 4-tuples one connection has on each side of its routers, mapped onto one of them
    (the client's, as its kernel sees it): endpoint by endpoint, from the forwarded pairs."""

    def __init__(
        self,
        pairs: Iterable[tuple[Seen, Seen]],
        canonical: tuple[Endpoint, Endpoint] | None,
        clients: frozenset[str] = frozenset(),
    ) -> None:
        # For each undirected tuple, the endpoint maps to the tuples it was forwarded to or from.
        edges: dict[frozenset[Endpoint], dict[frozenset[Endpoint], dict[Endpoint, Endpoint]]] = {}
        self.first_seen: dict[frozenset[Endpoint], int] = {}  # when each tuple was first forwarded
        for a, b in pairs:
            pa, pb = a.packet, b.packet
            for p in (pa, pb):
                key = frozenset(((p.src, p.sport), (p.dst, p.dport)))
                self.first_seen[key] = min(self.first_seen.get(key, p.time_ns), p.time_ns)
            ea, eb = ((pa.src, pa.sport), (pa.dst, pa.dport)), ((pb.src, pb.sport), (pb.dst, pb.dport))
            if set(ea) == set(eb):
                continue  # routed without NAT: the same tuple on both sides
            ta, tb = frozenset(ea), frozenset(eb)
            edges.setdefault(ta, {})[tb] = {eb[0]: ea[0], eb[1]: ea[1]}
            edges.setdefault(tb, {})[ta] = {ea[0]: eb[0], ea[1]: eb[1]}
        self.tuples: dict[frozenset[Endpoint], dict[Endpoint, Endpoint]] = {}
        self.anchor: dict[frozenset[Endpoint], frozenset[Endpoint]] = {}  # each tuple's client tuple
        self.canonical = frozenset(canonical) if canonical is not None else None
        if self.canonical is None:
            return
        # The judged connection first; then every other client's (several clients behind one
        # NAT: each connection is joined in its own client's terms, not left as two halves).
        others = sorted(sorted(t) for t in edges if t != self.canonical and any(a in clients for a, _ in t))
        for start in [self.canonical, *(frozenset(t) for t in others)]:
            if start not in self.tuples:
                self._join_from(start, edges)

    def _join_from(
        self,
        start: frozenset[Endpoint],
        edges: dict[frozenset[Endpoint], dict[frozenset[Endpoint], dict[Endpoint, Endpoint]]],
    ) -> None:
        """Breadth first from a client's tuple: each tuple's endpoints in that client's terms."""
        self.tuples[start] = {e: e for e in start}
        self.anchor[start] = start
        queue = [start]
        while queue:
            here = queue.pop()
            for there, mapping in edges.get(here, {}).items():
                if there in self.tuples:
                    continue
                # mapping: endpoint of `there` -> endpoint of `here`; then `here` -> the client's.
                self.tuples[there] = {e: self.tuples[here][mapping[e]] for e in there}
                self.anchor[there] = start
                queue.append(there)

    @property
    def judged_tuples(self) -> list[frozenset[Endpoint]]:
        """The judged connection's tuples (the client's first), as its notes name them."""
        return [t for t, a in self.anchor.items() if a == self.canonical]

    def translate(self, p: TcpPacket) -> TcpPacket:
        """The packet in the canonical tuple's terms (unchanged if its tuple is not joined)."""
        mapping = self.tuples.get(frozenset(((p.src, p.sport), (p.dst, p.dport))))
        if mapping is None or len(mapping) != 2:
            return p
        (src, sport), (dst, dport) = mapping[(p.src, p.sport)], mapping[(p.dst, p.dport)]
        if (src, sport, dst, dport) == directed(p):
            return p
        return p._replace(src=src, sport=sport, dst=dst, dport=dport)

    def translate_all(self, packets: Iterable[TcpPacket]) -> Iterator[TcpPacket]:
        for p in packets:
            yield self.translate(p)

    def seen_from(
        self, addresses: set[str], canonical: tuple[Endpoint, Endpoint], client: bool = False
    ) -> tuple[Endpoint, Endpoint]:
        """The canonical (local, peer) as a host with `addresses` sees the connection: the
        client's is the canonical tuple itself; another host's is the first other tuple with its
        address at its own end (the server behind a NAT talks to the router's address; if a
        forgotten flow came back through NAT on another port, its socket is the first one's)."""
        local, peer = canonical
        if client:
            return canonical
        found: list[tuple[int, tuple[Endpoint, Endpoint]]] = []
        start = frozenset(canonical)
        for tuple_, mapping in self.tuples.items():
            back = {canon: mine for mine, canon in mapping.items()}
            if (
                self.anchor.get(tuple_) == start
                and local in back
                and peer in back
                and back[local][0] in addresses
                and tuple_ != start
            ):
                found.append((self.first_seen.get(tuple_, 0), (back[local], back[peer])))
        return min(found)[1] if found else canonical

    @property
    def joined(self) -> bool:
        """Whether the judged connection was seen as more than one tuple (NAT on its way)."""
        return len(self.judged_tuples) > 1

    @property
    def joins_any(self) -> bool:
        """Whether any client's connection was seen as more than one tuple."""
        return len(self.tuples) > len(set(self.anchor.values()))


def challenge_acks(
    packets: Iterable[TcpPacket], host: set[str], rst_flag: int, ack_flag: int
) -> list[TcpPacket]:
    """RFC 5961 challenge ACKs in one host's own capture: a bare ACK the host sent within 10 ms
    of receiving an RST on the same connection that did not reset it (Linux answers an RST whose
    sequence number is in the window but not the exact next one with such an ACK)."""
    last_rst: dict[frozenset[Endpoint], int] = {}
    found: list[TcpPacket] = []
    for p in packets:
        ends = frozenset(((p.src, p.sport), (p.dst, p.dport)))
        if p.dst in host and p.flags & rst_flag:
            last_rst[ends] = p.time_ns
        elif p.src in host and p.flags == ack_flag and p.payload_len == 0:
            t = last_rst.pop(ends, None)
            if t is not None and p.time_ns - t <= 10_000_000:
                found.append(p)
    return found
