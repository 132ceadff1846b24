"""The state the analysis keeps per connection and per direction, and the per-segment flags.

Field names with a Wireshark counterpart follow ``tcp_flow_t`` and ``tcp_analyze_seq_info``
in ``epan/dissectors/packet-tcp.c``; the rest are facts of our own (evidence, counts).
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from orchestrator.pcap.reader import ACK, FIN, RST, SYN, TcpPacket
from orchestrator.tcp.connection import FrameRef

__all__ = [
    "ANY_RETX",
    "DUPACK",
    "FACTS",
    "FAST",
    "HALF",
    "KA",
    "KA_ACK",
    "LABELS",
    "M32",
    "MAX_EVIDENCE",
    "MAX_KA_GAPS",
    "MAX_RUNS",
    "MAX_UNACKED",
    "OOO",
    "QUICK_NS",
    "RETX",
    "SPUR",
    "SYN_COPY_NS",
    "ZW",
    "ZWP",
    "ZWP_ACK",
    "Conn",
    "Flow",
    "Label",
    "Run",
    "Seen",
    "acked",
    "covers",
    "crossed",
    "labels_of",
    "last_probe_answered",
    "peer_real_t",
    "pos",
    "probe_reset",
    "rst_disowned",
    "rst_taken",
    "secs",
    "went_on_after",
]

# Evidence lists are capped; counts stay exact.
MAX_EVIDENCE = 100
# Keep-alive gaps kept per side for the median.
MAX_KA_GAPS = 10_000
# Retransmitted segments tracked at once per side (memory bound).
MAX_RUNS = 4096
# Unacknowledged segments remembered per side (memory bound; Wireshark's limit too).
MAX_UNACKED = 10_000
# A SYN or SYN+ACK again this soon, with nothing between, is a copy: Linux's SYN timer is 1 s
# at least (TCP_TIMEOUT_INIT); what it re-sends at once follows a segment (`segments._note_copy`).
SYN_COPY_NS = 200_000_000
# A retransmission this soon after its segment's previous send: in a capture that holds copies
# (`SYN_COPY_NS`), the same packet seen twice; no timer re-sends so soon (the RTO's floor is
# 200 ms, a tail-loss probe's 10 ms), only a fast retransmission on a sub-millisecond path.
QUICK_NS = 1_000_000

M32 = 0xFFFFFFFF
HALF = 0x80000000

# Per-segment analysis flags (a subset of Wireshark's TCP_A_*).
KA = 0x1
KA_ACK = 0x2
ZWP = 0x4
ZWP_ACK = 0x8
ZW = 0x10
RETX = 0x20
FAST = 0x40
SPUR = 0x80
OOO = 0x100
DUPACK = 0x200
ANY_RETX = RETX | FAST | SPUR
# Flags that leave a fact behind (a count, evidence).
FACTS = ZW | KA | KA_ACK | ANY_RETX

Label = Literal[
    "retransmission",
    "fast_retransmission",
    "spurious_retransmission",
    "out_of_order",
    "keep_alive",
    "zero_window",
    "zero_window_probe",
    "syn",
    "fin",
    "rst",
]
# Every label, with the Wireshark field it stands for (tcp.analysis.* or tcp.flags.*).
LABELS: dict[Label, str] = {
    "retransmission": "tcp.analysis.retransmission",
    "fast_retransmission": "tcp.analysis.fast_retransmission",
    "spurious_retransmission": "tcp.analysis.spurious_retransmission",
    "out_of_order": "tcp.analysis.out_of_order",
    "keep_alive": "tcp.analysis.keep_alive",
    "zero_window": "tcp.analysis.zero_window",
    "zero_window_probe": "tcp.analysis.zero_window_probe",
    "syn": "tcp.flags.syn",
    "fin": "tcp.flags.fin",
    "rst": "tcp.flags.reset",
}
_BITS: tuple[tuple[int, Label], ...] = (
    (ANY_RETX, "retransmission"),  # Wireshark marks fast and spurious ones as retransmissions too
    (FAST, "fast_retransmission"),
    (SPUR, "spurious_retransmission"),
    (OOO, "out_of_order"),
    (KA, "keep_alive"),
    (ZW, "zero_window"),
    (ZWP, "zero_window_probe"),
)
_TCP_BITS: tuple[tuple[int, Label], ...] = ((SYN, "syn"), (FIN, "fin"), (RST, "rst"))
_labels: dict[tuple[int, int], frozenset[Label]] = {}


def labels_of(ta: int, flags: int) -> frozenset[Label]:
    """The labels of a segment with analysis flags `ta` and TCP flags `flags` (memoised: few kinds)."""
    key = (ta, flags & (SYN | FIN | RST))
    found = _labels.get(key)
    if found is None:
        found = _labels[key] = frozenset(
            [name for bit, name in _BITS if ta & bit] + [name for bit, name in _TCP_BITS if flags & bit]
        )
    return found


class Seen:
    """A segment remembered as evidence, with its position in the input stream."""

    __slots__ = ("i", "p")

    def __init__(self, p: TcpPacket, i: int) -> None:
        self.p = p
        self.i = i


class Run:
    """Every send of one segment (same seq, same sender): the original first, if captured."""

    __slots__ = ("acked_before", "after_new_data", "count", "end", "last", "original", "sends", "seq")

    def __init__(
        self,
        seq: int,
        end: int,
        original: TcpPacket | None,
        after_new_data: bool = False,
        acked_before: bool = False,
    ) -> None:
        self.seq = seq
        self.end = end
        self.original = original
        # New data went out between the original send and the first retransmission: then the
        # segment was not the tail, and that retransmission was not a tail-loss probe of it.
        self.after_new_data = after_new_data
        # The peer had acknowledged the segment before its first retransmission (spurious).
        self.acked_before = acked_before
        self.count = 0  # retransmissions, the original not counted
        self.sends: list[TcpPacket] = [] if original is None else [original]  # capped
        self.last: Seen | None = None  # latest retransmission

    def add(self, p: TcpPacket, i: int) -> None:
        self.count += 1
        self.last = Seen(p, i)
        if len(self.sends) <= MAX_EVIDENCE:
            self.sends.append(p)


class Flow:
    """One direction of a connection: what one side sends."""

    # Hot fields first, so they share cache lines (slots are laid out in this order).
    __slots__ = (  # noqa: RUF023
        "conn",
        "rev",
        "slow",
        "nextseq",
        "seq_wraps",
        "lastack",
        "window",
        "dupacks",
        "maxseq",
        "lastflags",
        "lastack_t",
        "last_p",
        "nextseq_t",
        "unacked",
        "runs",
        "fresh",
        "watch",
        "acked_fin_early",
        "acked_upto",
        "addr",
        "messy",
        "base_seq",
        "base_set",
        "fin",
        "fin_end",
        "fins",
        "ka",
        "ka_acks",
        "ka_first",
        "ka_frames",
        "ka_gaps",
        "ka_idle_ref",
        "ka_last",
        "ka_answered",
        "ka_run",
        "ka_run_gaps",
        "ka_run_ref",
        "ka_run_p",
        "ka_zw",
        "last_real_t",
        "last_rst_t",
        "pre_rst_t",
        "port",
        "retx",
        "retx_frames",
        "retx_refs",
        "rst",
        "rst_count",
        "rst_stateless",
        "rst_stray",
        "rsts",
        "syn",
        "syn_ack",
        "syn_resent",
        "syn_copy_ns",
        "synack_last_t",
        "quick",
        "zw",
        "zw_frames",
    )

    def __init__(self, conn: Conn, addr: str, port: int) -> None:  # noqa: PLR0915 - one line per field of the state
        self.conn = conn
        self.addr = addr
        self.port = port
        self.rev: Flow = self
        # The analysis' short way is closed to this flow's segments while `fresh` or `watch`
        # is set, or its latest segment was a keep-alive or zero-window probe (see `reslow`).
        self.slow = True
        self.fresh = True  # base sequence numbers not settled yet
        self.watch = False  # its ACKs may complete the handshake, the initial RTT or a FIN close
        # Wireshark's per-flow state (tcp_flow_t, tcp_analyze_seq_info). 0 means "unset", as there.
        self.base_set = False
        self.base_seq = 0
        self.nextseq = 0
        # How often `nextseq` passed 2^32 (forward, less backward): nextseq + seq_wraps * 2^32
        # is the sequence space unwrapped from its first value (bytes past 4 GiB).
        self.seq_wraps = 0
        self.nextseq_t = 0
        self.maxseq = 0  # maxseqtobeacked
        self.lastack = 0
        self.lastack_t = 0  # ns of this side's latest segment
        self.last_p: TcpPacket | None = None  # that segment (the frame a keep-alive run counts from)
        self.window = -1  # G_MAXUINT32 there: equal to no real window
        self.dupacks = 0
        self.lastflags = 0
        # Facts.
        self.syn: Seen | None = None  # first SYN without ACK
        self.syn_ack: Seen | None = None  # first SYN+ACK
        # Re-sends of that SYN (SYN+ACK), and the latest SYN+ACK's ns: counted from the control
        # segments, which every pass replays (the compiled pass keeps retransmissions as
        # stand-ins without flags).
        self.syn_resent = 0
        self.synack_last_t = 0
        # ns from that SYN (SYN+ACK) to its copy, else -1: seen again sooner than SYN_COPY_NS with
        # nothing between (`segments._note_copy`), the same packet captured twice.
        self.syn_copy_ns = -1
        # Retransmissions within QUICK_NS of their segment's previous send (counted in every pass).
        self.quick = 0
        self.fin: Seen | None = None  # first FIN
        self.fin_end = 0  # the sequence number that acknowledges the first FIN
        self.fins: list[TcpPacket] = []
        self.acked_fin_early = False  # acknowledged the peer's FIN before sending its own
        self.rst: Seen | None = None
        self.rst_stateless = False  # first RST: no ACK flag, seq = the peer's ACK (no socket)
        # An RST from a SYN_SENT socket answering the peer's ACK of an earlier connection on
        # the 4-tuple (before any SYN+ACK): it resets that one, not this (`control_facts`).
        self.rst_stray: Seen | None = None
        self.rst_count = 0
        self.rsts: list[TcpPacket] = []
        self.retx = 0
        self.retx_frames: list[TcpPacket] = []
        # Those frames as the summary's evidence already, where a pass made them so (`fastpass`).
        self.retx_refs: list[FrameRef] | None = None
        self.ka = 0
        self.ka_acks = 0  # keep-alive ACKs this side sent: answers to the peer's probes
        self.ka_first: Seen | None = None
        self.ka_last: Seen | None = None
        self.ka_frames: list[TcpPacket] = []
        self.ka_gaps: list[int] = []
        self.ka_idle_ref = 0  # ns: the first probe's idle time counts from here
        # The current run of probes: those since the peer last sent anything (an answer starts
        # the kernel's count again), their gaps, and the peer's last segment before them.
        self.ka_run = 0
        self.ka_run_gaps: list[int] = []
        self.ka_run_ref = 0  # ns
        self.ka_run_p: TcpPacket | None = None  # the segment at ka_run_ref, when known
        self.ka_answered = 0  # probes the peer answered (anything it sent before the next probe)
        self.ka_zw = 0  # probes sent while the peer advertised a zero window
        self.last_real_t = 0  # ns: latest segment before a probe that was not itself a probe
        self.last_rst_t = 0  # ns: the latest RST this side sent
        self.pre_rst_t = 0  # ns: its latest segment before that RST that was neither a probe nor an RST
        self.zw = 0
        self.zw_frames: list[TcpPacket] = []
        # (end seq, first send, stream position) of segments with data/SYN/FIN not yet
        # acknowledged, in sending order; acknowledged ones are dropped from the left.
        self.unacked: deque[tuple[int, TcpPacket, int]] = deque()
        self.acked_upto: int | None = None  # the peer's ACK when it last let us drop segments
        # `unacked` may be out of sequence order (a retransmission stood in for an uncaptured
        # original, or an out-of-order segment came): the vectorised pass leaves it to the loop.
        self.messy = False
        self.runs: dict[int, Run] = {}

    def reslow(self) -> None:
        """Recompute `slow` after `fresh`, `watch` or `lastflags` changed."""
        self.slow = self.fresh or self.watch or bool(self.lastflags & (KA | ZWP))


class Conn:
    """One connection (Wireshark's tcp.stream): its two flows and what spans both."""

    __slots__ = (  # noqa: RUF023 - hot fields first
        "last",
        "packets",
        "last_activity",
        "rtt_wait",
        "a",
        "b",
        "best_run",
        "best_run_flow",
        "first",
        "first_i",
        "first_rtt",
        "handshake_done",
        "hs_pending",
        "index",
        "mru_syn",
    )

    def __init__(self, index: int, first: TcpPacket, first_i: int = 0) -> None:
        self.index = index
        self.first = first
        self.first_i = first_i  # its first segment's position in the stream
        self.last = first
        self.last_activity: TcpPacket | None = None
        self.packets = 0
        self.mru_syn = 0  # ns of the latest SYN (Wireshark: ts_mru_syn), 0 = none
        self.first_rtt = 0  # ns (Wireshark: ts_first_rtt), 0 = unknown
        self.rtt_wait = False  # a SYN was seen, the initial RTT not yet known
        self.hs_pending: Flow | None = None  # after the SYN+ACK: the flow whose ACK completes the handshake
        self.handshake_done = False
        self.a = Flow(self, first.src, first.sport)
        self.b = Flow(self, first.dst, first.dport)
        self.a.rev = self.b
        self.b.rev = self.a
        self.best_run: Run | None = None
        self.best_run_flow: Flow | None = None


def crossed(old: int, new: int) -> int:
    """+1 where a sequence number moving from `old` to `new` (less than 2^31 either way) passed
    2^32 going forward, -1 going back, else 0; nothing from 0 (Wireshark's unset)."""
    if not old or new == old:
        return 0
    if new < old:
        return 1 if (new - old) & M32 < HALF else 0
    return -1 if (old - new) & M32 < HALF else 0


def covers(ack: int, end: int) -> bool:
    """ack >= end in sequence space."""
    return ((ack - end) & M32) < HALF


def acked(f: Flow, end: int) -> bool:
    """Whether the peer's latest ACK that let `f` forget segments covers `end`."""
    return f.acked_upto is not None and covers(f.acked_upto, end)


def pos(s: Seen | None) -> int:
    """Position in the input stream; 0 for nothing."""
    return s.i if s is not None else 0


def secs(ns: float) -> float:
    return round(ns / 1e9, 6)


def peer_real_t(f: Flow) -> int:
    """When `f` last sent a segment that was neither a keep-alive probe nor an RST (ns; 0: none
    seen): what answers the other side's probe. An RST is no answer: where it arrives it ends
    the connection, and where a capture point sees it but the prober does not (it was lost),
    the prober goes on probing."""
    if f.last_rst_t and f.last_rst_t == f.lastack_t:
        return f.pre_rst_t
    return f.last_real_t if f.lastflags & KA else f.lastack_t


def probe_reset(f: Flow) -> TcpPacket | None:
    """The peer's RST for `f`'s latest keep-alive probe: after it, with no ACK flag and seq = the
    probe's ACK, as a host sends for a segment it has no socket for (not the peer's own abort,
    which an RST with ACK is)."""
    last = f.ka_last
    if last is None or f.rev.last_rst_t <= last.p.time_ns:
        return None
    return next(
        (r for r in f.rev.rsts if r.time_ns > last.p.time_ns and not r.flags & ACK and r.seq == last.p.ack),
        None,
    )


def rst_disowned(f: Flow) -> bool:
    """Whether `f` sent something other than an RST after its RSTs: a socket that resets is
    gone, so those RSTs were not its own (a middlebox's, or injected). The receiver then went
    on as well, having dropped them: Linux takes an RST only at exactly the next expected
    sequence number, and answers one elsewhere in the window with a challenge ACK (RFC 5961)."""
    return f.rst is not None and f.lastack_t > f.last_rst_t


# A peer's segment later than this after an RST (with no handshake RTT known) was sent after
# the RST reached it, not in flight when it was sent.
CROSSING_NS = 200_000_000


def rst_taken(f: Flow) -> bool:
    """Whether `f`'s first RST, though not its socket's (`rst_disowned`), reset the peer: the
    peer answered `f`'s later segments only with RSTs of its own, and sent nothing else after
    it (a segment in flight as it was sent aside). Measured (tcpscen run, kernel 6.18): the
    client's own firewall (iptables REJECT with tcp-reset) answered the server's echo with an RST
    at exactly the server's next expected number; the server's app got ECONNRESET, and each of
    the client's retransmissions met an RST of no socket, which that firewall dropped."""
    rst, peer = f.rst, f.rev
    if rst is None or peer.rst is None or pos(peer.rst) < pos(rst) or not peer.rst_stateless:
        return False
    return not went_on_after(f.conn, peer, rst.p)


def went_on_after(c: Conn, peer: Flow, rst: TcpPacket) -> bool:
    """Whether `peer` sent something other than an RST later than one round trip after `rst`:
    it had not taken the RST (a segment in flight when the RST left arrives within that time)."""
    margin = c.first_rtt or CROSSING_NS
    return peer.lastack_t > rst.time_ns + margin and peer.last_rst_t < peer.lastack_t


def last_probe_answered(f: Flow) -> bool:
    """Whether the peer sent anything that answers `f`'s latest keep-alive probe after it."""
    return f.ka_last is not None and peer_real_t(f.rev) > f.ka_last.p.time_ns


# Two keep-alive probes closer than this are one probe and the network's copy of it: Linux's
# keep-alive interval and idle are whole seconds, 1 s at least (TCP_KEEPINTVL, TCP_KEEPIDLE).
COPY_NS = 500_000_000


def probe_gaps(f: Flow, gaps: list[int]) -> list[int]:
    """The gaps between `f`'s keep-alive probes, without those to a copy (`COPY_NS`). Probes in a
    zero window are zero-window probes, whose backoff starts at the RTO (200 ms): kept whole."""
    return gaps if f.ka_zw else [g for g in gaps if g >= COPY_NS]


def probe_copies(f: Flow) -> list[int]:
    """The gaps from a probe to its copy, in the order seen (see `probe_gaps`)."""
    return [] if f.ka_zw else [g for g in f.ka_gaps if g < COPY_NS]
