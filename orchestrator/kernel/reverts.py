"""ICMP errors that undo backoff steps of a side's RTO timer (RFC 6069, Linux's
tcp_ld_RTO_revert), for the RTO abort's model (`rto`): which errors may (`reverting`), the
timer replayed with them (`replayed`, through `icmp_timer`), whether one answered the last
retransmission or came within the run (`undid_last`, `undid_within`), and the notes saying what
they did to the timer and why the others did nothing (`revert_notes`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.kernel.icmp_timer import Replay, base_rto, next_expiry, replay
from orchestrator.kernel.predict import KernelPrediction
from orchestrator.kernel.settings import KernelSettings
from orchestrator.kernel.soft_errors import name_of, quoting
from orchestrator.pcap.icmp import IcmpError
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side

__all__ = ["Reverts", "replayed", "revert_notes", "reverting", "undid_last", "undid_within"]


def reverting(
    icmp: Sequence[IcmpError], conn: ConnectionSummary, side: Side, sends: list[FrameRef]
) -> list[IcmpError]:
    """The ICMP errors that may undo a backoff step of this side's retransmissions (RFC 6069):
    of a kind that reverts, since the head's original send, quoting the head itself (snd_una)."""
    head = conn.oldest_unacked_seq
    return [
        e
        for e in quoting(icmp, conn, side)
        if e.reverts_backoff and e.time >= sends[0].time and (head is None or e.tcp_seq == head)
    ]


@dataclass(slots=True)
class Reverts:
    """The timer replayed with the errors that undid backoff steps, and what it tells."""

    run: Replay
    doubling: float  # the same timer's end without the errors, s after the stamp
    expiry: tuple[float, bool]  # `icmp_timer.next_expiry` after the last captured send


def replayed(
    errors: list[IcmpError],
    armed: list[FrameRef],
    stamp: FrameRef,
    offset: float,
    rto: float,
    backoff: int,
    budget: float,
    s: KernelSettings,
) -> Reverts | None:
    """The timer run with the errors that may undo its backoff (`icmp_timer.replay`), if any did.
    Its base RTO is read from the gaps with those errors replayed on the backoff count; failing
    that, from the model's RTO at the stamp."""
    if not errors:
        return None
    base = base_rto(armed, errors, backoff, s.rto_max) or rto / float(2**backoff)
    at = [(e.time - stamp.time, e) for e in errors]
    ut = bool(s.user_timeout)
    run = replay(base, backoff, offset, at, budget, rto_max=s.rto_max, user_timeout=ut)
    if not run.reverted:
        return None
    plain = replay(base, backoff, offset, [], budget, rto_max=s.rto_max, user_timeout=ut)
    return Reverts(run, round(plain.abort, 6), next_expiry(armed, errors, backoff, base, s.rto_max))


def revert_notes(
    icmp: Sequence[IcmpError],
    conn: ConnectionSummary,
    side: Side,
    sends: list[FrameRef],
    rev: Reverts | None,
    p: KernelPrediction,
    s: KernelSettings,
) -> list[str]:
    """What the ICMP errors about this side's segments did to its timer: which undid a backoff
    step (and so moved the abort), and why the others could not."""
    errors = [e for e in quoting(icmp, conn, side) if e.time >= sends[0].time]
    if not errors:
        return []
    reverted = rev.run.reverted if rev is not None else []
    out: list[str] = []
    if rev is not None and reverted:
        first, doubling, clocked = reverted[0], rev.doubling, len(rev.run.clocked_out)
        at_once = f", {clocked} of them clocking out a retransmission at once (the RTO they left was spent)"
        if p.predicted_s != doubling:
            moved = "past the user timeout" if s.user_timeout else f"not {doubling:.3f} s as without them"
        elif s.user_timeout:
            moved = f"as without them ({s.label('user_timeout')} clamps the timer the errors re-armed)"
        else:
            moved = "as without them"
        out.append(
            f"reverted backoff: {len(reverted)} ICMP destination-unreachable error(s) quoting the oldest "
            f"unacknowledged segment each undid a backoff step (RFC 6069, tcp_ld_RTO_revert; the first from "
            f"{first.src} {first.time - p.start_time:.3f} s after the first retransmission, frame "
            f"{first.frame}){at_once if clocked else ''}; the model replays them on the timer at their "
            f"times: it fires more often than doubling, and its first fire past the budget comes "
            f"{p.predicted_s:.3f} s after the first retransmission, {moved}; the app is told "
            f"{p.app_error}, the ICMP's error, not ETIMEDOUT"
        )
        if p.beyond_capture:
            out.append(
                "reverted backoff: the capture ends before that abort, and the errors after its end cannot "
                "be known; the model runs the timer without any, and each one more would move its fires "
                "sooner: "
                + (
                    "the abort may then come sooner, or later than this where one re-armed the timer past "
                    "the user timeout (its clamp is not applied there), never before the user timeout"
                    if s.user_timeout
                    else "the abort may then come sooner, or one RTO later where a fire moved just short of "
                    "the budget: this is no bound"
                )
            )
    undid = {id(e) for e in reverted}  # by identity: thousands of errors may come
    idle = [e for e in errors if id(e) not in undid]
    if idle:
        out.append(_not_reverted(idle, conn, reverted, p))
    return out


def _not_reverted(
    idle: list[IcmpError], conn: ConnectionSummary, reverted: list[IcmpError], p: KernelPrediction
) -> str:
    """Why these errors undid no backoff step: their kind, the segment they quote, or no backoff left."""
    head = conn.oldest_unacked_seq
    kinds = sorted({name_of(e) for e in idle if not e.reverts_backoff})
    other = [e for e in idle if e.reverts_backoff and head is not None and e.tcp_seq != head]
    none_left = [e for e in idle if e.reverts_backoff and (head is None or e.tcp_seq == head)]
    why: list[str] = []
    if kinds:
        only = "only ICMPv4 net or host unreachable and ICMPv6 no route do"
        why.append(f"{', '.join(kinds)} never undoes one ({only})")
    if other:
        why.append(f"{len(other)} quoted another segment than the oldest unacknowledged one (not snd_una)")
    if none_left:
        why.append(
            f"{len(none_left)} came with no backoff to undo (before the first timer retransmission, or "
            "after earlier errors had undone it all)"
        )
    then = f"; the timer doubled as without them; the app is told {p.app_error}" if not reverted else ""
    return (
        f"no reverted backoff: {len(idle)} ICMP error(s) for this connection undid no backoff step: "
        f"{'; '.join(why)}{then}"
    )


def undid_last(icmp: Sequence[IcmpError], conn: ConnectionSummary, side: Side, timer: list[FrameRef]) -> bool:
    """Whether an error that undoes a backoff step answered the last timer retransmission: the
    timer then runs again at the last gap's RTO, not doubled (tcp_ld_RTO_revert)."""
    return len(timer) >= 2 and any(e.time >= timer[-1].time for e in reverting(icmp, conn, side, timer))


def undid_within(
    icmp: Sequence[IcmpError], conn: ConnectionSummary, side: Side, timer: list[FrameRef]
) -> bool:
    """Whether an error that undoes a backoff step came within the timer's run, before its last
    retransmission: the backoff then started again there (tcp_ld_RTO_revert), so the doublings
    since the stamp say nothing of the timer's last RTO; the last gap does."""
    return len(timer) >= 2 and any(e.time < timer[-1].time for e in reverting(icmp, conn, side, timer))
