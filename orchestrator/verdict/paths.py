"""Where the connection's packets went through the routers, for the verdict.

`path_view` reads each router's captures (`tcp.paths`), joins the connection's tuples across
NAT (so the client's connection and the server's are judged as one, in the client's terms),
and says, per router, which of the connection's segments died inside it (in the sender's
capture and the router's inbound one, absent from its outbound one), which it forged, and why,
from its conntrack log (`<router>.conntrack.log`) and nft's counters (`<router>.ss.txt`).
Without routers it changes nothing.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.pcap.reader import ACK, RST, TcpPacket, read_tcp
from orchestrator.scenario.model import Scenario, Side
from orchestrator.scenario.topology import attachments, is_router, routers
from orchestrator.tcp.connection import FrameRef
from orchestrator.tcp.paths import (
    Endpoint,
    NatJoin,
    RouterCapture,
    RouterPaths,
    Seen,
    challenge_acks,
    trace_router,
)
from orchestrator.verdict import expectations as c

MAX_LISTED = 50
_EVENT = re.compile(r"^\[(?P<t>[\d.]+)\]\s+\[(?P<kind>[A-Z]+)\]")
_TUPLE = re.compile(r"src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")


def parse_endpoint(text: str) -> Endpoint:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(endpoint: Endpoint) -> str:
    ip, port = endpoint
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass
class RouterFacts:
    paths: RouterPaths
    died: list[Seen] = field(default_factory=list)  # the connection's, in the router's capture
    forged: list[Seen] = field(default_factory=list)
    forwarded: int = 0
    forgot_at: float | None = None  # conntrack's DESTROY of the flow while established
    # When the entry's established timeout ran out, if well before the DESTROY (conntrack removes
    # an expired entry only when it next looks at it), and the flow's last packet before that.
    timed_out_at: float | None = None
    last_before: float | None = None
    picked_up_at: float | None = None  # a NEW entry for the same flow after that
    same_port: bool | None = None
    # The router's own end of the flow (its address and NAT port, as the far end sees it) before
    # it forgot the flow and after it picked it up again, and the far end's address.
    nat_end_before: Endpoint | None = None
    nat_end_after: Endpoint | None = None
    far_address: str | None = None
    counters: dict[str, int] = field(default_factory=dict)


@dataclass
class PathView:
    scenario: Scenario
    run_dir: Path
    sources: list[tuple[Path, str]]  # the app hosts' captures, as merge_sent takes them
    join: NatJoin
    routers: dict[str, RouterFacts] = field(default_factory=dict)
    canonical: tuple[Endpoint, Endpoint] | None = None

    def merged(self, sent: Iterable[TcpPacket]) -> Iterator[TcpPacket]:
        """The hosts' own sends, in the client's terms, with the segments routers forged."""
        forged = sorted(
            (self.join.translate(s.packet) for f in self.routers.values() for s in f.paths.forged),
            key=lambda p: p.time_ns,
        )
        return heapq.merge(self.join.translate_all(sent), forged, key=lambda p: p.time_ns)

    def forger_of(self, frame: FrameRef) -> str | None:
        """The router that forged `frame` (it left the router without entering it), if one did:
        then the end whose address it bears never sent it."""
        for name, f in self.routers.items():
            if any(s.packet.file == frame.file and s.packet.frame == frame.frame for s in f.paths.forged):
                return name
        return None

    def translated(self, packets: Iterable[TcpPacket]) -> Iterator[TcpPacket]:
        return self.join.translate_all(packets)

    def seen_by(self, host: str, local: str, peer: str) -> tuple[str, str]:
        """(local, peer) as `host`'s own kernel names the connection (ss), behind a NAT too."""
        addresses = {str(a) for addrs in attachments(self.scenario, host).values() for a in addrs}
        client = self.scenario.hosts[host].role == "client"
        mine = self.join.seen_from(addresses, (parse_endpoint(local), parse_endpoint(peer)), client)
        return show(mine[0]), show(mine[1])

    def to_json(self, t0: float | None) -> dict[str, Any]:
        out: dict[str, Any] = {"joined": self.join.joined, "tuples": [], "routers": {}}
        for tuple_ in self.join.judged_tuples:
            out["tuples"].append(" - ".join(sorted(show(e) for e in tuple_)))
        for name, f in self.routers.items():
            out["routers"][name] = {
                "forwarded": f.forwarded,
                "died": len(f.died),  # the judged connection's
                "forged": len(f.forged),
                "died_all": len(f.paths.died),  # every connection's through the router
                "forged_all": len(f.paths.forged),
                "died_frames": [_seen_json(s, self.join, t0) for s in f.died[:MAX_LISTED]],
                "forged_frames": [_seen_json(s, self.join, t0) for s in f.forged[:MAX_LISTED]],
                "forgot_at": f.forgot_at,
                "timed_out_at": f.timed_out_at,  # the entry's expiry, when well before its DESTROY
                "picked_up_at": f.picked_up_at,
                "same_port": f.same_port,
                "counters": f.counters,
            }
        return out

    def notes(self, t0: float | None, rst: FrameRef | None = None) -> list[str]:
        """`rst`: the connection's first RST, if any (whether an end noticed the router's lapse)."""
        out: list[str] = []
        if self.join.joined:
            tuples = ", ".join(" - ".join(sorted(show(e) for e in t)) for t in self.join.judged_tuples)
            out.append(f"one connection through NAT, seen as {tuples}: judged as one, in the client's terms")
        for name, f in self.routers.items():
            if f.forgot_at is not None:
                out.append(
                    self._forgot(name, f, t0)
                    + self._picked_up(f, t0, rst if rst is not None and rst.time >= f.forgot_at else None)
                )
            if f.died:
                first = f.died[0].packet
                why = (
                    f" (nft counted {f.counters['forgotten']} packets of forgotten flows and dropped them)"
                    if (f.counters.get("forgotten") and self._drops_forgotten(name))
                    else ""
                )
                others = (
                    f"; {len(f.paths.died)} of all the connections through it"
                    if len(f.paths.died) > len(f.died)
                    else ""
                )
                out.append(
                    f"{name}: {len(f.died)} of the connection's segments came in and never went out, "
                    "the first "
                    f"{first.file}#{first.frame} {c.at(first.time, t0)}{why}{others}"
                )
            if f.forged:
                shown = "; ".join(
                    f"{_flags(s.packet.flags)} to {show((s.packet.dst, s.packet.dport))} bearing "
                    f"{show((s.packet.src, s.packet.sport))}, {s.packet.file}#{s.packet.frame} "
                    f"{c.at(s.packet.time, t0)}"
                    for s in f.forged[:4]
                )
                out.append(
                    f"{name} forged {len(f.forged)} segments into the connection ({shown}): they left it "
                    "without entering it, so the end whose address they bear never sent them, whatever "
                    "the receiving capture suggests"
                )
        return out

    def _forgot(self, name: str, f: RouterFacts, t0: float | None) -> str:
        assert f.forgot_at is not None
        destroyed = f"{name}: conntrack forgot the flow at {c.at(f.forgot_at, t0)} (DESTROY)"
        if f.timed_out_at is None or f.last_before is None:
            return destroyed
        timeout = f.timed_out_at - f.last_before
        return (
            f"{name}: conntrack's entry for the flow timed out at {c.at(f.timed_out_at, t0)}, its "
            f"established timeout ({timeout:g} s) after the flow's last packet through it "
            f"({c.at(f.last_before, t0)}): forgotten from then on; conntrack destroyed the entry only "
            f"at {c.at(f.forgot_at, t0)} (DESTROY), when it next looked at it"
        )

    def _picked_up(self, f: RouterFacts, t0: float | None, rst: FrameRef | None) -> str:
        """What came of the new entry: with the same port the far end cannot tell; with another
        the far end's kernel meets a 4-tuple it has no socket for (and answers RST)."""
        if f.picked_up_at is None:
            return ""
        text = f", and picked it up again at {c.at(f.picked_up_at, t0)} as a new entry"
        loose = "nf_conntrack_tcp_loose=1, Linux's default"
        answered = f", answered RST ({c.ref(rst, t0)})" if rst is not None else ""
        if f.same_port:
            return f"{text} with the same port ({loose})" + (": neither end noticed" if rst is None else "")
        ports = (
            f" ({show(f.nat_end_after)} instead of {show(f.nat_end_before)}; {loose})"
            if f.nat_end_after is not None and f.nat_end_before is not None
            else f" ({loose})"
        )
        far = self._host_of(f.far_address) or "the far end"
        return f"{text} with another port{ports}: {far}'s kernel got a 4-tuple it has no socket for{answered}"

    def _host_of(self, address: str | None) -> str | None:
        for host in self.scenario.hosts:
            if address in {str(a) for addrs in attachments(self.scenario, host).values() for a in addrs}:
                return host
        return None

    def captured_ends(self, frame: FrameRef) -> tuple[str, str] | None:
        """A frame's (source, destination) as its own capture has them, before the NAT join."""
        path = self.run_dir / frame.file
        if not path.exists():
            return None
        for p in read_tcp(path):
            if p.frame == frame.frame:
                return show((p.src, p.sport)), show((p.dst, p.dport))
        return None

    def foreign_rst_note(
        self, host: str, local: str, peer: str, rst: FrameRef, t0: float | None
    ) -> str | None:
        """If `host`'s RST is for another tuple than its socket's (`local`, `peer` in the
        connection's terms), a NAT changed the tuple: its kernel had no socket for that one."""
        if not self.join.joined:
            return None
        ends = self.captured_ends(rst)
        mine = self.seen_by(host, local, peer)
        if ends is None or set(ends) == set(mine):
            return None
        untranslated = self.canonical is not None and ends[1] in {show(e) for e in self.canonical}
        how = (
            "the router forwarded the flow without translating it (its NAT no longer rewrote it)"
            if untranslated
            else "a NAT on the way gave the flow another port"
        )
        return (
            f"{host}'s RST ({c.ref(rst, t0)}) is for {ends[0]} -> {ends[1]}, not its socket's tuple "
            f"({mine[0]} -> {mine[1]}): {how}, and {host}'s kernel had no socket for that one"
        )

    def _judged(self) -> str:
        """The connection the router's facts are about, in the client's terms."""
        return " -> ".join(show(e) for e in self.canonical) if self.canonical is not None else "none"

    def _drops_forgotten(self, router: str) -> bool:
        spec = self.scenario.hosts[router]
        return getattr(getattr(spec, "conntrack", None), "forgotten", "loose") != "loose"

    def checks(self, t0: float | None) -> list[c.Check]:
        out: list[c.Check] = []
        for name, want in self.scenario.expect.middlebox.items():
            f = self.routers.get(name)
            if f is None:
                out.append(c.Check(f"middlebox.{name}", False, "its captures", "no capture of this router"))
                continue
            counted = (
                ("died", want.died, f.died, f.paths.died),
                ("forged", want.forged, f.forged, f.paths.forged),
            )
            for what, bound, segments, every in counted:
                if bound is not None:
                    frames = [FrameRef(s.packet.file, s.packet.frame, s.packet.time) for s in segments]
                    check = c.check_count(f"middlebox.{name}.{what}", bound, frames, t0)
                    if len(every) > len(segments):  # other connections' too: say whose these are
                        check.observed += (
                            f" (of {self._judged()}'s segments, the connection the expectations are "
                            f"about; {len(every)} of all the connections through {name})"
                        )
                    out.append(check)
            log = [f"{name}.conntrack.log"]
            if want.forgot is not None:
                seen = f.forgot_at is not None
                shown = f"DESTROY at {c.at(f.forgot_at, t0)}" if f.forgot_at is not None else "no DESTROY"
                out.append(
                    c.Check(
                        f"middlebox.{name}.forgot", seen == want.forgot, str(want.forgot).lower(), shown, log
                    )
                )
            if want.picked_up is not None:
                seen = f.picked_up_at is not None and bool(f.same_port)
                shown = (
                    f"NEW at {c.at(f.picked_up_at, t0)}, {'same' if f.same_port else 'another'} port"
                    if f.picked_up_at is not None
                    else "no new entry"
                )
                out.append(
                    c.Check(
                        f"middlebox.{name}.picked_up",
                        seen == want.picked_up,
                        str(want.picked_up).lower(),
                        shown,
                        log,
                    )
                )
        return out


def path_view(
    scenario: Scenario,
    run_dir: Path,
    captures: dict[str, list[str]],
    sockets: dict[str, str],
    client_ends: tuple[str, str] | None,
) -> PathView:
    sources = [
        (run_dir / pcap, str(scenario.hosts[host].address))
        for host, files in captures.items()
        if not is_router(scenario, host)
        for pcap in files
    ]
    traced: dict[str, RouterPaths] = {}
    for router in routers(scenario):
        caps = list(_router_captures(scenario, router, run_dir, captures.get(router, [])))
        if caps:
            traced[router] = trace_router(caps)
    canonical = (parse_endpoint(client_ends[0]), parse_endpoint(client_ends[1])) if client_ends else None
    clients = frozenset(
        str(a)
        for host in scenario.hosts_with_role("client")
        for addrs in attachments(scenario, host).values()
        for a in addrs
    )
    join = NatJoin((pair for paths in traced.values() for pair in paths.forwarded), canonical, clients)
    view = PathView(scenario, run_dir, sources, join, canonical=canonical)
    for router, paths in traced.items():
        facts = _facts(router, paths, join, canonical, run_dir, sockets.get(router, ""))
        _timed_out(facts, _established_timeout(scenario, router), join, canonical)
        view.routers[router] = facts
    return view


def _established_timeout(scenario: Scenario, router: str) -> float | None:
    """The router's established timeout as the scenario fixes it for the whole run (None: the
    kernel's 5 days, or an idle_timeout step changes it mid-run)."""
    if any(step.fault == "idle_timeout" and step.host == router for step in scenario.timeline):
        return None
    spec = scenario.hosts[router]
    timeouts = getattr(getattr(spec, "conntrack", None), "timeouts", {})
    value = timeouts.get("established")
    return float(value) if value is not None else None


# A DESTROY this much after the entry's expiry was conntrack's late look, not the expiry itself
# (measured: an entry with an 8 s timeout whose flow went quiet at +0.15 s was destroyed at
# +12.17 s, by the flow's next packet; the reset-both supervisor, listing every 250 ms, makes
# the DESTROY come within that of the expiry).
_LATE_DESTROY_S = 1.0


def _timed_out(
    facts: RouterFacts,
    timeout: float | None,
    join: NatJoin,
    canonical: tuple[Endpoint, Endpoint] | None,
) -> None:
    """When the flow's entry timed out, if its DESTROY came well after that."""
    if facts.forgot_at is None or timeout is None or canonical is None:
        return
    ends = frozenset(canonical)

    def ours(s: Seen) -> bool:
        p = join.translate(s.packet)
        return frozenset(((p.src, p.sport), (p.dst, p.dport))) == ends

    times = [
        s.packet.time
        for pair in facts.paths.forwarded
        for s in pair
        if s.packet.time < facts.forgot_at and ours(s)
    ]
    if not times:
        return
    expiry = max(times) + timeout
    if facts.forgot_at - expiry > _LATE_DESTROY_S:
        facts.timed_out_at, facts.last_before = expiry, max(times)


def _router_captures(
    scenario: Scenario, router: str, run_dir: Path, files: list[str]
) -> Iterator[RouterCapture]:
    for net in attachments(scenario, router):
        neighbours = frozenset(
            str(a)
            for host in scenario.hosts
            if host != router
            for a in attachments(scenario, host).get(net, [])
        )
        for pcap in files:
            if pcap.startswith(f"{router}.{net}.") and (run_dir / pcap).exists():
                yield RouterCapture(router, net, run_dir / pcap, neighbours)


def _facts(
    router: str,
    paths: RouterPaths,
    join: NatJoin,
    canonical: tuple[Endpoint, Endpoint] | None,
    run_dir: Path,
    ss: str,
) -> RouterFacts:
    facts = RouterFacts(paths)
    if canonical is None:
        return facts
    ends = frozenset(canonical)

    def ours(s: Seen) -> bool:
        p = join.translate(s.packet)
        return frozenset(((p.src, p.sport), (p.dst, p.dport))) == ends

    facts.died = [s for s in paths.died if ours(s)]
    facts.forged = [s for s in paths.forged if ours(s)]
    facts.forwarded = sum(1 for a, _ in paths.forwarded if ours(a))
    facts.counters = {m[1]: int(m[2]) for m in re.finditer(r"counter (\w+) \{\s*packets (\d+)", ss)}
    _conntrack_facts(facts, run_dir / f"{router}.conntrack.log", ends)
    return facts


def _conntrack_facts(facts: RouterFacts, log: Path, ends: frozenset[Endpoint]) -> None:
    """DESTROY of the flow while established, and a NEW entry for it afterwards (same NAT port?)."""
    if not log.exists():
        return
    nat_port: int | None = None
    for line in log.read_text(errors="replace").splitlines():
        m = _EVENT.match(line)
        tuples = _TUPLE.findall(line)
        if m is None or len(tuples) < 2:
            continue
        src, dst, sport, dport = tuples[0]
        if frozenset(((src, int(sport)), (dst, int(dport)))) != ends:
            continue
        reply_dport = int(tuples[1][3])
        kind, t = m["kind"], float(m["t"])
        nat_end = (tuples[1][1], reply_dport)  # the reply's destination: the router's NAT end
        if kind == "DESTROY" and "ESTABLISHED" in line and facts.forgot_at is None:
            facts.forgot_at = t
        elif kind == "NEW" and facts.forgot_at is not None and facts.picked_up_at is None:
            facts.picked_up_at = t
            facts.same_port = nat_port is None or reply_dport == nat_port
            facts.nat_end_after = nat_end
        if facts.forgot_at is None:
            nat_port = reply_dport
            facts.nat_end_before = nat_end
            facts.far_address = tuples[1][0]


def _seen_json(s: Seen, join: NatJoin, t0: float | None) -> dict[str, Any]:
    p = s.packet
    canon = join.translate(p)
    return {
        "frame": f"{p.file}#{p.frame}",
        "at": c.at(p.time, t0),
        "network": s.network,
        "from": show((canon.src, canon.sport)),
        "seq": p.seq,
        "len": p.payload_len,
        "rst": bool(p.flags & RST),
        "ack": bool(p.flags & ACK),
    }


def challenge_checks(
    scenario: Scenario,
    run_dir: Path,
    captures: dict[str, list[str]],
    side_host: dict[Side, str],
    t0: float | None,
) -> list[c.Check]:
    """`challenge_acks`: per side, the RFC 5961 challenge ACKs in that host's own capture."""
    out: list[c.Check] = []
    for side, want in scenario.expect.challenge_acks.items():
        host = side_host[side]
        mine = {str(a) for addrs in attachments(scenario, host).values() for a in addrs}
        packets = heapq.merge(
            *(read_tcp(run_dir / f) for f in captures.get(host, [])), key=lambda p: p.time_ns
        )
        found = challenge_acks(packets, mine, RST, ACK)
        frames = [FrameRef(p.file, p.frame, p.time) for p in found]
        out.append(
            c.Check(
                f"challenge_acks.{side}",
                want.contains(len(frames)),
                str(want),
                str(len(frames)),
                c.refs(frames, t0),
            )
        )
    return out


def _flags(bits: int) -> str:
    names = (("S", 0x02), ("R", RST), ("F", 0x01), ("P", 0x08), ("A", ACK))
    return "[" + "".join(n for n, b in names if bits & b) + "]"
