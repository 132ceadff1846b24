"""Figures read from a case's pcaps and agent events: the kernel's behaviour, measured.

Only the reference pcap reader parses packets; this module just classifies its segments.
Times are epoch seconds (pcap and agent clocks are the same kernel clock).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from orchestrator.pcap.reader import ACK, FIN, RST, SYN, IcmpError, TcpPacket, read_tcp
from tests.helpers.netns import A_ADDR, B_ADDR, CaseResult

SEQ_SPACE = 1 << 32


def tcp_model_timeout(retries: int, rto_base_s: float = 0.2, rto_max_s: float = 120.0) -> float:
    """net/ipv4/tcp_timer.c tcp_model_timeout(): the time budget tcp_retries2 stands for."""
    thresh = (int(rto_max_s / rto_base_s)).bit_length() - 1  # ilog2(TCP_RTO_MAX / rto_base)
    if retries <= thresh:
        return ((2 << retries) - 1) * rto_base_s
    return ((2 << thresh) - 1) * rto_base_s + (retries - thresh) * rto_max_s


def packets(result: CaseResult, capture: str) -> list[TcpPacket]:
    return list(read_tcp(result.pcaps[capture]))


def icmp_errors(result: CaseResult, capture: str) -> list[IcmpError]:
    cap = read_tcp(result.pcaps[capture])
    for _ in cap:
        pass
    return list(cap.icmp_errors)


def after(seq: int, other: int) -> bool:
    """seq > other in sequence space (RFC 1982 style, as the kernel's after())."""
    return 0 < (seq - other) % SEQ_SPACE < SEQ_SPACE // 2


@dataclass(frozen=True)
class Send:
    t: float
    seq: int
    length: int
    kind: str  # "head": the oldest unacknowledged byte again; "new": beyond all sent; "other"


@dataclass
class Train:
    """A stalled sender's data segments from the first send of the byte that is never
    acknowledged (the head) on: its original send, then every later data segment."""

    head_seq: int
    original: float
    sends: list[Send] = field(default_factory=list)

    @property
    def retransmissions(self) -> list[float]:
        return [s.t for s in self.sends if s.kind == "head"]

    @property
    def first_retransmission(self) -> float:
        return self.retransmissions[0]

    @property
    def first_after_original(self) -> Send:
        return self.sends[0]

    def rto_retransmissions(self, loss_probes: int) -> list[float]:
        """The head's re-sends by the retransmission timer. A tail-loss probe fires once, first
        (the kernel's TCPLossProbes counter says whether it did), and may re-send the head too;
        only tcp_retransmit_skb(), the RTO path, sets retrans_stamp."""
        sends = self.sends[1:] if loss_probes else self.sends
        return [s.t for s in sends if s.kind == "head"]


def stalled_train(pkts: list[TcpPacket], sender: str = A_ADDR) -> Train:
    """The head is the highest ACK the sender ever saw from its peer: nothing past it got through
    (or its ACK did not come back)."""
    acks = [p.ack for p in pkts if p.dst == sender and p.flags & ACK]
    head = acks[-1]
    data = [p for p in pkts if p.src == sender and p.payload_len > 0]
    first = next(i for i, p in enumerate(data) if p.seq == head)
    train = Train(head_seq=head, original=data[first].time)
    sent_end = (head + data[first].payload_len) % SEQ_SPACE
    for p in data[first + 1 :]:
        end = (p.seq + p.payload_len) % SEQ_SPACE
        if p.seq == head:
            kind = "head"
        elif not after(sent_end, p.seq):
            kind = "new"
        else:
            kind = "other"
        if after(end, sent_end):
            sent_end = end
        train.sends.append(Send(t=p.time, seq=p.seq, length=p.payload_len, kind=kind))
    return train


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def error_time(result: CaseResult, app: str = "client") -> tuple[float, str]:
    event = result.event(app, "error")
    assert event is not None, f"{result.name}: {app} reported no error"
    return event.t, str(event.fields["errno"])


def syn_times(pkts: list[TcpPacket], sender: str = A_ADDR) -> list[float]:
    return [p.time for p in pkts if p.src == sender and p.flags & (SYN | ACK) == SYN]


def synack_times(pkts: list[TcpPacket], sender: str = B_ADDR) -> list[float]:
    return [p.time for p in pkts if p.src == sender and p.flags & (SYN | ACK) == SYN | ACK]


def rst_times(pkts: list[TcpPacket], sender: str) -> list[float]:
    return [p.time for p in pkts if p.src == sender and p.flags & RST]


@dataclass(frozen=True)
class Keepalive:
    probes: list[float]  # bare ACKs with seq = snd_nxt - 1
    answered: list[bool]  # whether the peer sent anything before the next probe
    last_received: float  # the last segment from the peer
    rst: float | None


def keepalive_probes(pkts: list[TcpPacket], sender: str = A_ADDR) -> Keepalive:
    """Probes as Wireshark's keep_alive: len 0 (or 1), seq = next expected - 1, no SYN/FIN/RST."""
    next_seq: int | None = None
    probes: list[float] = []
    answered: list[bool] = []
    last_received = 0.0
    for p in pkts:
        if p.src == sender:
            if p.flags & SYN:
                next_seq = (p.seq + 1) % SEQ_SPACE
                continue
            if next_seq is None:
                continue
            bare = p.payload_len <= 1 and not p.flags & (SYN | FIN | RST)
            if bare and p.seq == (next_seq - 1) % SEQ_SPACE:
                probes.append(p.time)
                answered.append(False)
            elif after((p.seq + p.payload_len) % SEQ_SPACE, next_seq):
                next_seq = (p.seq + p.payload_len) % SEQ_SPACE
        else:
            last_received = p.time
            if answered:
                answered[-1] = True
    rst = next((p.time for p in pkts if p.src == sender and p.flags & RST), None)
    return Keepalive(probes=probes, answered=answered, last_received=last_received, rst=rst)


@dataclass(frozen=True)
class ZeroWindow:
    closed_at: float  # the first ACK from the receiver with window 0
    probes: list[float]  # the sender's bare segments with seq = snd_una - 1 after that
    answers: list[float | None]  # the receiver's zero-window ACK for each probe, within 50 ms


def zero_window_probes(pkts: list[TcpPacket], sender: str = A_ADDR) -> ZeroWindow:
    zero = [p for p in pkts if p.src != sender and p.window == 0 and not p.flags & (SYN | FIN | RST)]
    closed_at = zero[0].time
    snd_una = zero[0].ack
    probes = [
        p.time
        for p in pkts
        if p.src == sender
        and p.time > closed_at
        and p.payload_len == 0
        and p.seq == (snd_una - 1) % SEQ_SPACE
        and not p.flags & (SYN | FIN | RST)
    ]
    answers: list[float | None] = []
    for t in probes:
        reply = next((z.time for z in zero if t <= z.time <= t + 0.05), None)
        answers.append(reply)
    return ZeroWindow(closed_at=closed_at, probes=probes, answers=answers)


TIMER = re.compile(r"timer:\((\w+),([^,]+),(\d+)\)")


def ss_timer(ss_text: str) -> tuple[str, str, int] | None:
    """The `timer:(on,412ms,3)` part of `ss -o`: kind, time left, retransmission count."""
    found = TIMER.search(ss_text)
    return (found.group(1), found.group(2), int(found.group(3))) if found else None


# The kernel's timers live on the timer wheel, which rounds an expiry up to its level's
# granularity: at most 1/8 of the interval late (at HZ=250 a 1 s timer fires after 1.024 s).
WHEEL_SLACK = 0.125


def on_time(actual: float, expected: float, early: float = 0.02) -> bool:
    """A timer that should fire `expected` seconds after its start, given the wheel's slack
    (plus a few ms for the timestamps and, for app events, the wake-up)."""
    return expected * (1 - early) - 0.005 <= actual <= expected * (1 + WHEEL_SLACK) + 0.03


def syn_schedule(syn_retries: int, linear_timeouts: int, rto_s: float = 1.0) -> tuple[list[float], float]:
    """SYN_SENT per tcp_retransmit_timer and tcp_write_timeout: the SYN times and the abort,
    relative to the first SYN (retrans_stamp is set by tcp_connect). The RTO stays at 1 s while
    icsk_backoff <= tcp_syn_linear_timeouts, then doubles; the connect fails at the first expiry
    where the retransmission count reached syn_retries + linear_timeouts or the time since the
    first SYN reached tcp_model_timeout(syn_retries, rto_base = 1 s)."""
    t, rto, retransmits = 0.0, rto_s, 0
    syns = [0.0]
    limit = tcp_model_timeout(syn_retries, rto_base_s=rto_s)
    while True:
        t += rto
        if retransmits >= syn_retries + linear_timeouts or t >= limit - 1e-9:
            return syns, t
        retransmits += 1
        syns.append(t)
        if retransmits > linear_timeouts:
            rto = min(2 * rto, 120.0)
