"""What the engine says about one TCP connection. Field names follow `tcpscen analyze --json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Side = Literal["client", "server"]
Close = Literal["fin", "fin-unanswered", "rst", "none"]
Handshake = Literal["complete", "partial", "missing"]


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, and a big
# capture makes hundreds of thousands of these (1.07 against 0.26 us each). Hashable all the
# same; nothing assigns to one.
@dataclass(slots=True, unsafe_hash=True)
class FrameRef:
    """Evidence: a frame in a capture file (1-based, as Wireshark numbers it) and its epoch time."""

    file: str
    frame: int
    time: float

    def __reduce__(self) -> tuple[type[FrameRef], tuple[str, int, float]]:
        # Pickled by the thousand between analysis processes: the plain constructor call is
        # a third of the default's cost.
        return (FrameRef, (self.file, self.frame, self.time))


@dataclass(slots=True)
class SideCounts:
    client: int = 0
    server: int = 0

    def get(self, side: Side) -> int:
        return self.client if side == "client" else self.server

    def add(self, side: Side, n: int = 1) -> None:
        if side == "client":
            self.client += n
        else:
            self.server += n


@dataclass(slots=True)
class SideFrames:
    """Evidence frames per side; capped lists (counts live in SideCounts)."""

    client: list[FrameRef] = field(default_factory=list)
    server: list[FrameRef] = field(default_factory=list)

    def of(self, side: Side) -> list[FrameRef]:
        return self.client if side == "client" else self.server


@dataclass(frozen=True, slots=True)
class KeepaliveTiming:
    first_after_idle_s: float  # the first probe, after the idle time since the peer's last segment
    # The median gap between the probes of the last run (those the peer never answered; all of
    # them if the last probe was answered); None with a single probe.
    interval_s: float | None
    # The last run of probes the peer did not answer: how many (0: the last probe was
    # answered), and when the peer last sent anything before them (epoch s): where the
    # kernel's count of that run starts.
    run_probes: int = 0
    run_from: float | None = None
    run_from_frame: FrameRef | None = None  # the peer's segment at run_from, when captured


@dataclass(slots=True)
class ConnectionSummary:
    client: str  # "IP:PORT"; the side that sent the SYN, else the ephemeral port's side
    server: str
    handshake: Handshake
    close: Close
    initiator: Side | None
    close_packets: int | None
    rst_from: Side | None
    retransmissions: SideCounts
    backoff_gaps_s: list[float]
    keepalive_probes: SideCounts
    keepalive: KeepaliveTiming | None
    zero_window: SideCounts
    duration_s: float
    notes: list[str] = field(default_factory=list)
    # Evidence, beyond the JSON contract.
    first_frame: FrameRef | None = None
    last_frame: FrameRef | None = None
    syn: FrameRef | None = None
    fins: SideFrames = field(default_factory=SideFrames)
    rsts: SideFrames = field(default_factory=SideFrames)
    retransmission_frames: SideFrames = field(default_factory=SideFrames)
    keepalive_frames: SideFrames = field(default_factory=SideFrames)
    zero_window_frames: SideFrames = field(default_factory=SideFrames)
    # The retransmissions of the most-retransmitted segment, original send first.
    backoff_frames: list[FrameRef] = field(default_factory=list)
    # Last frame that carried data or SYN/FIN from either side: where idleness starts.
    last_activity: FrameRef | None = None
    # Original send of the oldest segment that was never acknowledged (RTO budget starts here).
    oldest_unacked: FrameRef | None = None
    # Its sequence number (absolute, as on the wire): ICMP errors quoting it are about the head,
    # the only ones that undo a backoff step (tcp_ld_RTO_revert: seq == snd_una).
    oldest_unacked_seq: int | None = None
    # Position among the capture's connections, in order of first segment (Wireshark's tcp.stream).
    stream: int = 0
    # TCP segments of this connection, both directions.
    packets: int = 0
    # Who sent the segment of `backoff_frames`, of `oldest_unacked`, and most keep-alive probes.
    backoff_from: Side | None = None
    oldest_unacked_from: Side | None = None
    keepalive_from: Side | None = None
    # Whether the sender of `backoff_frames` sent new data between that segment's original
    # send and its first retransmission (then the head was not the tail, and that first
    # retransmission is the timer's, not a tail-loss probe). None: not known.
    backoff_after_new_data: bool | None = None
    # Keep-alive probes of each side that the other answered (with anything before the next probe).
    keepalive_answered: SideCounts = field(default_factory=SideCounts)
    # Keep-alive ACKs each side sent (answers to the other side's probes).
    keepalive_acks: SideCounts = field(default_factory=SideCounts)
    # Keep-alive-shaped probes each side sent while the other's window was 0: Linux's
    # zero-window probes, which Wireshark counts as keep-alives (they are in keepalive_probes).
    keepalive_in_zero_window: SideCounts = field(default_factory=SideCounts)
    # Every captured send of `oldest_unacked` (it first, capped as `backoff_frames`): the
    # segment the kernel's timer and its budget follow, which need not be the most
    # retransmitted one (one lost many times earlier, then acknowledged, may be that).
    head_frames: list[FrameRef] = field(default_factory=list)
    # `backoff_after_new_data` for that segment.
    head_after_new_data: bool | None = None
    # The RST that answered the last probe of `keepalive_from`: the peer had no socket (rebooted,
    # or closed while its own RST was lost). The connection was reset there, not timed out.
    keepalive_reset: FrameRef | None = None
    # SYN and SYN-ACK retransmissions per side: a side that re-sent its handshake segment gets no
    # RTT sample from it without timestamps (Karn), and Linux then starts on the 3 s fallback
    # RTO (RFC 6298 5.7); with timestamps a late first copy may give a sample of a second or more.
    handshake_retransmitted: SideCounts = field(default_factory=SideCounts)
    # The side none of whose segments the capture holds while the other's are there (one
    # direction only: asymmetric routing, a one-way tap): what it sent or answered is unknown.
    unseen: Side | None = None
    # The capture holds this connection's packets twice (both ends' captures merged, two
    # interfaces, a router's `-i any`): the seconds from its SYN (else SYN+ACK) to the copy of
    # it (`flows.SYN_COPY_NS`); None: no copy. Then `quick_retransmissions` are copies, which
    # Wireshark's retransmission counts (and `retransmissions`) include.
    copy_gap_s: float | None = None
    # Retransmissions within `flows.QUICK_NS` of their segment's previous send, per side.
    quick_retransmissions: SideCounts = field(default_factory=SideCounts)
    # The RST that ended this connection where Wireshark counts it in the next one on the
    # 4-tuple: the answer to the challenge ACK its socket (in LAST_ACK) sent a new SYN.
    reset_later: FrameRef | None = None
