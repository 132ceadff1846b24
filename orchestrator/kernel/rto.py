"""The RTO abort: data a side sent and never saw acknowledged.

The clock starts at the head's first retransmission (Linux's ``retrans_stamp``), not at its
original send, and not at a tail-loss probe (which sets no stamp, whether it re-sends the
segment or carries new data). Fast retransmissions (duplicate ACKs, SACK, RACK) set the stamp
too, but they are not the timer's: its RTO is read from the gaps after the last of them
(``timers.fast_retransmissions``), as each re-arms the timer. The budget is
``tcp_retries2``'s (``tcp_model_timeout``) or TCP_USER_TIMEOUT. With tcp_retries2 the check
runs only when the timer fires, so the abort is the first expiry at or past stamp + budget,
the timer doubling from the RTO the capture shows at the stamp; with a user timeout the
timer is clamped, and the abort is stamp + timeout. Nothing is sent at the abort: the
observed time is the timer's next expiry after the last retransmission, if the capture went
on that long; where the user timeout's clamp comes first, the packets only bound the end
(after the last retransmission, before that expiry). ICMP errors quoting the head that undo
backoff steps (tcp_ld_RTO_revert) are replayed on the timer at their times (`reverts`,
`icmp_timer`): the abort is the handler's first run past the budget with them, which may be
sooner or later than doubling, and past a user timeout.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

from orchestrator.kernel import reverts
from orchestrator.kernel.late_fires import anchor_on_last_fire
from orchestrator.kernel.predict import (
    TOLERANCE,
    WHEEL_SLACK,
    BoundWords,
    KernelPrediction,
    observe_between,
    ref,
)
from orchestrator.kernel.settings import KernelSettings
from orchestrator.kernel.soft_errors import quoting, soft_error
from orchestrator.kernel.thin_linear import level_gaps, level_words, thin_notes
from orchestrator.kernel.timer_reading import (
    LOCAL_RETRY,
    after_new_data,
    ceiling_ms,
    fallback_cap,
    fallback_note,
    first_is_tail_loss_probe,
    head_sends,
    plateau,
    rto_at,
)
from orchestrator.kernel.timers import (
    TCP_RTO_MAX,
    TCP_RTO_MIN,
    fast_retransmissions,
    rto_abort_after,
    rto_abort_from_stamp,
    rto_aborts_from_stamp,
    timer_fires,
    timer_gap,
)
from orchestrator.pcap.icmp import IcmpError
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side

# A segment neither retransmitted nor this long behind the capture's end proves nothing yet.
_TOO_SOON = 5 * TCP_RTO_MIN


def _budgets(rto_max: float) -> dict[int, float]:
    return {n: rto_abort_after(n, rto_max=rto_max) for n in range(31)}


_BUDGETS = _budgets(TCP_RTO_MAX)


def predict(
    conn: ConnectionSummary, side: Side, s: KernelSettings, icmp: Sequence[IcmpError], end: float
) -> KernelPrediction | None:
    original = conn.oldest_unacked
    if original is None or conn.oldest_unacked_from != side or conn.close == "rst" or conn.reset_later:
        return None  # nothing left unacknowledged, or the connection was reset
    # A FIN close with this side's data or FIN never acknowledged (LAST_ACK, CLOSING): the
    # timer goes on as in any state, and the socket goes at its end.
    sends = head_sends(conn, side, original)
    # A capture that starts with this segment, the handshake not in it, may have started in
    # the middle of the backoff: its first send there may be a retransmission itself, and
    # the budget's start (the first retransmission) before the capture.
    # Read as if that first send were the original (the latest the budget can start): the
    # model's end is then the latest the abort can come.
    started_late = conn.handshake == "missing" and conn.first_frame == sends[0]
    captured_original = not _holds(conn.retransmission_frames.of(side), sends[0])
    retx = sends[1:] if captured_original else sends
    if not retx and end - original.time < _TOO_SOON:
        return None  # still in flight when the capture ended
    probe_shaped, tlp = _probe(conn, s, sends, captured_original)
    timer = retx[1:] if tlp else retx  # the retransmissions that count, from the stamp
    fast = fast_retransmissions([b.time - a.time for a, b in itertools.pairwise(timer)])
    # From the last fast retransmission on: its gap to the next is the timer's first RTO.
    armed = timer[fast:]
    first_fast = not fast and not tlp and captured_original and _first_is_fast(sends[0], timer)
    budget, basis = _budget(s)
    # Most connections have no ICMP error: nothing below that reads them applies then.
    reverting = reverts.reverting(icmp, conn, side, sends) if icmp else []
    local, linear, level_note = level_gaps(s, armed, bool(reverting))
    offset = 0.0  # from the stamp to the retransmission that armed the timer's first fire
    if timer:
        stamp = timer[0]
        what = (
            f"the first retransmission of the oldest unacknowledged segment ({ref(stamp)}), a fast one"
            if fast or first_fast
            else f"the first retransmission by the timer of the oldest unacknowledged segment ({ref(stamp)})"
        )
        offset = armed[0].time - stamp.time  # 0 unless fast ones came before the timer's first fire
        rto = LOCAL_RETRY if local else rto_at(armed, sends, fallback_cap(conn, side, sends), linear)
    else:
        stamp = FrameRef(original.file, original.frame, original.time + TCP_RTO_MIN)
        what = (
            f"one minimal RTO after the oldest unacknowledged segment's send ({ref(original)}): "
            "no retransmission captured"
        )
        rto = 2 * TCP_RTO_MIN
    if started_late and timer:
        what += "; the capture starts with that segment, so the first retransmission may be earlier"
    p = KernelPrediction("rto-abort", side, 0.0, stamp.time, what, basis, start_frame=stamp)
    p.upper_bound = started_late
    p.predicted_s = round(offset + _from_armed(budget - offset, rto, s, linear), 6)
    # Errors that undo backoff steps: the timer replayed with them, at their times (not where
    # the capture starts mid-backoff: the backoff count at its first send is not known).
    backoff = 0 if fast or first_fast else 1  # after armed[0]: a fast retransmission does not back off
    rev = (
        reverts.replayed(reverting, armed, stamp, offset, rto, backoff, budget, s)
        if timer and not local and not started_late
        else None
    )
    if local and not s.user_timeout:  # retried every 500 ms, no backoff: the first tick past the budget
        p.predicted_s = round(math.ceil(budget / LOCAL_RETRY - 1e-9) * LOCAL_RETRY, 6)
        p.basis += "; sends failing on the host are retried every 500 ms, without backoff"
    elif rev is not None:
        _take_reverts(p, rev, backoff, budget, s)
    elif not s.user_timeout:
        _take_doubling(p, conn, s, armed, rto, budget, (offset, linear), started_late)
    p.app_error = (soft_error(icmp, conn, side) if icmp else None) or "ETIMEDOUT"
    p.beyond_capture = p.at > end
    _observe(
        p,
        armed,
        rto,
        s,
        end,
        local,
        bool(icmp) and reverts.undid_last(icmp, conn, side, armed),
        linear,
        bool(icmp) and reverts.undid_within(icmp, conn, side, armed),
        quoting(icmp, conn, side, pmtu=True) if icmp else (),
        rev.expiry if rev is not None else None,
    )
    fasts = (fast, first_fast)
    p.explanations = [
        *_causes(conn, side, s, sends, captured_original, tlp, fasts, rto, reverting, end, p, linear),
        *(reverts.revert_notes(icmp, conn, side, sends, rev, p, s) if icmp else ()),
        *_no_probe(s, sends, probe_shaped and not tlp, linear),
        *thin_notes(s, armed, linear, tlp),
        *level_note,
    ]
    _after_fin(p, conn, s, offset, rto, local)
    return p


def _from_armed(left: float, rto: float, s: KernelSettings, linear: int) -> float:
    """The abort after the send that armed the timer's first fire, `left` of the budget then.
    Fast retransmissions before it may have spent it all (a user timeout of a few ms): the
    timer's first check ends the connection, at once for a user timeout (the timer clamped to
    what is left, `tcp_clamp_rto_to_user_timeout`), at its first expiry for tcp_retries2's."""
    if left < 0:
        return 0.0 if s.user_timeout else min(rto, s.rto_max)
    return rto_abort_from_stamp(
        left, rto, rto_max=s.rto_max, user_timeout=bool(s.user_timeout), linear=linear
    )


def _take_doubling(
    p: KernelPrediction,
    conn: ConnectionSummary,
    s: KernelSettings,
    armed: list[FrameRef],
    rto: float,
    budget: float,
    shape: tuple[float, int],
    started_late: bool,
) -> None:
    """The doubling timer's end (tcp_retries2's budget), its knife edges, and the basis saying so;
    counted from the last captured fire where the fires' lateness moved it to another fire.
    `shape`: the offset from the stamp to the send that armed the timer, and its linear gaps."""
    offset, linear = shape
    stamp = p.start_frame
    assert stamp is not None
    p.alternatives = [round(offset + a, 6) for a in _knife_edge(budget - offset, rto, s.rto_max, linear)]
    anchored = (
        None if started_late else anchor_on_last_fire(armed, stamp, rto, budget, s.rto_max, linear, offset)
    )
    if anchored is not None:
        p.predicted_s, p.alternatives = anchored
    elif len(armed) >= 2:  # an expiry the capture shows was a retransmission did not end it
        shown = armed[-1].time - stamp.time + TCP_RTO_MIN / 2  # the next fire comes an RTO later
        p.alternatives = [a for a in p.alternatives if a > shown]
    if started_late:  # a bound: the latest end the model allows (an orphan's too)
        orphan = _orphan_end(conn, s, offset, rto)
        p.predicted_s, p.alternatives = max(p.predicted_s, *p.alternatives, orphan or 0.0), []
    p.basis += (
        f"; the timer, {rto:.3f} s at that retransmission{level_words(linear)} and doubling{_capped(s)}, "
        f"fires past it {p.predicted_s:.3f} s after the first retransmission"
    )
    if anchored is not None:
        p.basis += (
            f", counted from its last captured fire ({armed[-1].time - stamp.time:.3f} s after it: the wheel "
            "fired each one late, and the lateness adds up), where it crosses the budget at another fire "
            "than counted from the first retransmission alone"
        )


@functools.lru_cache(maxsize=64)
def _budget(s: KernelSettings) -> tuple[float, str]:
    """The abort's budget from the first retransmission, and the basis that says which.
    Remembered: the settings are a capture's, and its predictions are made by the thousand."""
    if s.user_timeout:
        return s.user_timeout, f"{s.label('user_timeout')}, from the first retransmission"
    budget = rto_abort_after(s.retries2, rto_max=s.rto_max)
    basis = f"{s.label('retries2')}: a budget of {budget:g} s from the first retransmission"
    if s.rto_max != TCP_RTO_MAX:
        basis += f" (with {s.label('rto_max')}: the budget's linear steps are the ceiling's)"
    return budget, basis


def _probe(
    conn: ConnectionSummary, s: KernelSettings, sends: list[FrameRef], captured_original: bool
) -> tuple[bool, bool]:
    """Whether the head's first re-send looks like a tail-loss probe in the packets, and whether
    the model takes it as one: not where the setting sends none (tcp_early_retrans 0 to 2)."""
    shaped = first_is_tail_loss_probe(conn, sends, captured_original)
    return shaped, shaped and s.tail_loss_probes


def _no_probe(s: KernelSettings, sends: list[FrameRef], probe_shaped: bool, linear: int) -> list[str]:
    """Where the packets look like a tail-loss probe first but the setting sends none."""
    if not probe_shaped:
        return []
    gap = sends[1].time - sends[0].time
    level = "; the level gaps after it are a thin stream's linear timeouts" if linear else ""
    return [
        f"the first retransmission, {gap:.3f} s after the original send, is the timer's, not a "
        f"tail-loss probe: {s.label('early_retrans')} sends none (probes need 3 or 4), so the "
        f"budget counts from it{level}"
    ]


def _holds(frames: list[FrameRef], f: FrameRef) -> bool:
    """`f in frames`, by frame number first: a dataclass __eq__ per frame cost more than the rest."""
    return f.frame in [g.frame for g in frames] and f in frames


def _first_is_fast(original: FrameRef, timer: Sequence[FrameRef]) -> bool:
    """Whether the head's first retransmission (not a tail-loss probe) was a fast one: it came
    far sooner after the original than the RTO's floor allows the timer, and the gap after it
    jumps to the timer's RTO (the same test as between fast retransmissions)."""
    if len(timer) < 2:
        return False
    gaps = [timer[0].time - original.time, *(b.time - a.time for a, b in itertools.pairwise(timer))]
    return fast_retransmissions(gaps) == 1


def _after_fin(
    p: KernelPrediction, conn: ConnectionSummary, s: KernelSettings, offset: float, rto: float, local: bool
) -> None:
    """The orphan's end, as another the model allows (after the knife edges were explained)."""
    orphan = _orphan_end(conn, s, offset, rto)
    if orphan is None or local or s.user_timeout or p.upper_bound:
        return
    p.orphan_s = orphan
    if orphan != p.predicted_s:
        p.alternatives.append(orphan)
    orphans = s.label("orphan_retries")
    if not s.orphan_retries:
        orphans += " (0 means 8 while the RTO is under its ceiling" + (
            "; an expiry at the ceiling ends the orphan)" if s.rto_max != TCP_RTO_MAX else ")"
        )
    p.explanations.append(
        f"after its FIN the app may still hold the socket (shutdown(): {s.label('retries2')}, the app "
        f"told {p.app_error}) or have closed it (close(): an orphan, {orphans}, the abort {orphan:.3f} s "
        "after the first retransmission, and no app is told); the packets cannot tell which, so both "
        "ends are the model's"
    )


def _orphan_end(conn: ConnectionSummary, s: KernelSettings, offset: float, rto: float) -> float | None:
    """After a FIN the socket may be an orphan (the app called close(), not shutdown()): Linux
    then counts tcp_orphan_retries instead of tcp_retries2 (0 means 8 while the RTO is under
    its ceiling, `tcp_orphan_retries()`; at the ceiling 0 ends it: `rto_abort_from_stamp`), and
    no app is told. The packets cannot tell which."""
    if conn.close not in ("fin-unanswered", "fin"):
        return None
    budget = rto_abort_after(s.orphan_retries or 8, rto_max=s.rto_max)
    at_ceiling = not s.orphan_retries  # 0 is 8 only below the RTO's ceiling
    end = rto_abort_from_stamp(budget - offset, rto, rto_max=s.rto_max, ends_at_ceiling=at_ceiling)
    return round(offset + end, 6)


def _capped(s: KernelSettings) -> str:
    return f" up to {s.rto_max:g} s" if s.rto_max != TCP_RTO_MAX else ""


def _knife_edge(budget: float, rto: float, rto_max: float, linear: int = 0) -> list[float]:
    """Where an expiry falls within the timer wheel's slack of the budget, the abort may come
    one expiry earlier or later than the model's: an expiry just short of the budget can fire
    past it, and one just past it may really have been short (its RTO read from late gaps)."""
    return _rounded_edges(timer_fires(budget, rto, rto_max, linear), budget, set())  # rounded already


def _edges(fires: Sequence[float], budget: float, exact: Sequence[float] = ()) -> list[float]:
    """`_knife_edge`'s choice among the timer's fires (the last one beyond the model's abort);
    `exact`: runs at an error's time, not the wheel's, which cannot come late."""
    return _rounded_edges([round(f, 6) for f in fires], budget, {round(f, 6) for f in exact})


def _rounded_edges(rounded: Sequence[float], budget: float, punctual: set[float]) -> list[float]:
    """`_edges` of fires rounded to the us (round is idempotent there: `timer_fires` are)."""
    model = rounded[-2]
    out: list[float] = []
    for a, b in itertools.pairwise(rounded):
        if a < budget <= a * (1 + WHEEL_SLACK) and a != model and a not in punctual:
            out.append(a)  # short, but a late fire would end it here
        if a == model and a / (1 + WHEEL_SLACK) < budget:
            out.append(b)  # just past: a fire that was really short ends one expiry later
    return out


def _take_reverts(
    p: KernelPrediction, rev: reverts.Reverts, backoff: int, budget: float, s: KernelSettings
) -> None:
    """The replayed timer's end as the model's, its knife edges, and the basis saying so."""
    run = rev.run
    p.predicted_s = round(run.abort, 6)
    if s.user_timeout:
        if p.predicted_s > budget:
            p.basis += (
                "; an ICMP error re-armed the timer past the user timeout (tcp_ld_RTO_revert does not "
                f"clamp it), so it fires past it {p.predicted_s:.3f} s after the first retransmission"
            )
        return
    p.alternatives = [round(a, 6) for a in _edges(run.fires, budget, run.at_errors)]
    p.basis += (
        f"; the timer, on a base RTO of {run.base:.3f} s ({run.base * 2**backoff:.3f} s at that "
        "retransmission), doubling but for the backoff steps ICMP errors undid, fires past it "
        f"{p.predicted_s:.3f} s after the first retransmission"
    )


def _observe(
    p: KernelPrediction,
    timer: list[FrameRef],
    rto: float,
    s: KernelSettings,
    end: float,
    local: bool,
    reverted: bool = False,
    linear: int = 0,
    undone: bool = False,
    quoting: Sequence[IcmpError] = (),
    expiry: tuple[float, bool] | None = None,
) -> None:
    """The end the capture shows: the timer's next expiry after the last retransmission, if
    the capture went on past it. The RTO then is the one read at the stamp, doubled once per
    retransmission since (not the last gap doubled: the wheel made that one late), up to the
    ceiling: the setting's, or the level the gaps stopped at; after an ICMP error that undid
    a backoff step, the last gap again."""
    if not timer:
        p.observed = "no retransmission of the segment was captured"
        return
    stamp, last = p.start_frame or timer[0], timer[-1]  # `timer`: from the one that armed it
    # A ceiling the gaps show (the wheel's lateness in it) holds even where none was given.
    seen = plateau([b.time - a.time for a, b in itertools.pairwise(timer)])
    ceiling = min(s.rto_max, seen) if seen is not None else s.rto_max
    gap = timer_gap(len(timer), rto, ceiling, linear)
    if undone:  # measured: ICMP host unreachables mid-run, the abort 0.91 s after a 0.41 s gap
        gap = min(2 * (last.time - timer[-2].time), ceiling)
    at = last.time + (LOCAL_RETRY if local else gap)
    if reverted and not local:
        at = min(at, last.time + (last.time - timer[-2].time))
    if expiry is not None:  # the errors replayed on the backoff count (`icmp_timer.next_expiry`)
        at, reverted = expiry
    unclamped = at
    if s.user_timeout and not reverted:  # clamped to the user timeout, unless an error re-armed it
        at = min(at, max(stamp.time + s.user_timeout, last.time))
    alive = [e for e in quoting if e.time > at]
    if alive:
        p.observed = _still_sending(p, last, stamp, alive)
        return
    if at > end:
        p.observed = (
            f"still retransmitting when the capture ended, +{end - stamp.time:.3f} s after the first "
            f"retransmission (the timer's next expiry would be {at - stamp.time:.3f} s after it)"
        )
        if p.beyond_capture:
            p.observed += f"; the model's abort, {p.predicted_s:.3f} s after it, is beyond it"
        return
    if at < unclamped:  # the clamp, not the packets, would say when: they bound it only
        observe_between(p, last.time - stamp.time, unclamped - stamp.time, end - stamp.time, _BOUNDS)
        return
    p.observed_s = round(at - stamp.time, 6)
    p.observed = (
        f"inferred: nothing after the retransmission {last.time - stamp.time:.3f} s after the first one, "
        f"so the kernel gave up when its timer fired next, {at - last.time:.3f} s later"
    )


_BOUNDS = BoundWords(
    "between {lo:.3f} and {hi:.3f} s after the first retransmission: nothing after the one {lo:.3f} s "
    "after it, up to {bound}; the user timeout's clamp ends it in between, at a time the packets "
    "cannot show (nothing is sent); the app's error time can",
    "the timer's next expiry",
    "the capture ends with the retransmission {lo:.3f} s after the first one: it cannot show whether "
    "more followed",
)


def _still_sending(p: KernelPrediction, last: FrameRef, stamp: FrameRef, alive: list[IcmpError]) -> str:
    """ICMP errors quoting this side's segments after the timer's next expiry: the socket was
    still sending then, though the capture shows none of it. Measured (scratch u10, tcpscen run):
    the peer powered off, tcp_retries2 15; 30 s after the cut the client's ARP entry failed, its
    retransmissions stopped reaching the wire (ARP requests instead), and each drew an ICMP host
    unreachable from its own host (which also undid a backoff step); ss listed the socket ESTAB
    with 10 retransmissions at the end, the capture 8, and nothing told the app."""
    own = all(e.src == e.tcp_src for e in alive)
    why = (
        "reported by its own host: those sends never reached the wire (its neighbour entry for the "
        "peer had failed: no answer to ARP or neighbour solicitation)"
        if own
        else f"reported by {', '.join(sorted({e.src for e in alive}))}"
    )
    frames = ", ".join(ref(FrameRef(e.file, e.frame, e.time)) for e in alive[:3])
    text = (
        f"still retransmitting: nothing of it in the capture after the retransmission "
        f"{last.time - stamp.time:.3f} s after the first one, but {len(alive)} ICMP error(s) quote its "
        f"later sends ({frames}), the last {alive[-1].time - stamp.time:.3f} s after the first "
        f"retransmission, {why}; so the timer went on"
    )
    if p.beyond_capture:
        text += f"; the model's abort, {p.predicted_s:.3f} s after it, is beyond the capture"
    return text


def _causes(
    conn: ConnectionSummary,
    side: Side,
    s: KernelSettings,
    sends: list[FrameRef],
    captured_original: bool,
    tlp: bool,
    fasts: tuple[int, bool],
    rto: float,
    reverting: list[IcmpError],
    end: float,
    p: KernelPrediction,
    linear: int = 0,
) -> list[str]:
    """Why the capture may differ from the model; `reverting`: the errors that may undo a
    backoff step of these sends (`reverts.reverting`)."""
    out: list[str] = []
    gaps = [round(b.time - a.time, 6) for a, b in itertools.pairwise(sends)]
    if p.upper_bound:
        out.append(
            "the capture starts with this segment and without the handshake, so its first send "
            "there may itself be a retransmission: the budget counts from the first retransmission, "
            f"which may be before the capture, so the abort comes {p.predicted_s:.3f} s after "
            f"{ref(p.start_frame) if p.start_frame else 'it'} at the latest, and sooner by however "
            "long the kernel had been retransmitting before the capture started"
        )
    if tlp:
        out.append(
            f"the first retransmission, {gaps[0]:.3f} s after the original send, was a tail-loss probe "
            "(it re-sent the only segment in flight, and the timer's retransmission came one RTO after "
            "it, not doubled): it sets no stamp, so the budget counts from the next one"
        )
    fast, first_fast = fasts  # fast ones after the first retransmission; whether it was fast
    if first_fast:
        out.append(
            f"the first retransmission, {gaps[0]:.3f} s after the original send, came far sooner than any "
            "RTO: a fast retransmission (the peer's duplicate ACKs or SACKs), which starts the budget's "
            f"clock and re-arms the timer but is not its fire; its RTO, {rto:.3f} s, is read from the gaps "
            "after it"
        )
    elif fast:
        skip = int(captured_original) + int(tlp)  # the gaps between the fast ones come after these
        shown = ", ".join(f"{g:.3f}" for g in gaps[skip : skip + fast])
        out.append(
            f"the first retransmissions, {fast + 1} of them {shown} s apart, came far sooner than any RTO: "
            "fast retransmissions (the peer's duplicate ACKs or SACKs), which start the budget's clock and "
            f"re-arm the timer but are not its fires; its RTO, {rto:.3f} s, is read from the gaps after them"
        )
    elif captured_original and after_new_data(conn, sends) and len(sends) >= 2:
        out.append(
            "the first retransmission is the timer's: new data went out between the original send and "
            "it (a tail-loss probe carrying data Nagle held back, or the app's own writes)"
        )
    for alt in p.alternatives:
        if alt < p.predicted_s:
            out.append(
                f"knife edge: the model's expiry {alt:.3f} s after the first retransmission falls just "
                "short of the budget, and the timer wheel (late by up to 1/8) may fire it past the budget: "
                "the abort may come there"
            )
        else:
            out.append(
                f"knife edge: the model's abort {p.predicted_s:.3f} s after the first retransmission is "
                "just past the budget; had the RTO been a little shorter than the capture shows, it falls "
                "short and the abort comes at "
                f"{alt:.3f} s"
            )
    flat = sum(1 for g in gaps[1:] if abs(g - LOCAL_RETRY) <= LOCAL_RETRY * 0.1)
    if flat >= 2:
        out.append(
            f"{flat} retransmissions came {LOCAL_RETRY * 1000:.0f} ms apart without doubling: the sends "
            "failed on the host itself (no route, or a local qdisc or netfilter drop), and Linux retries "
            "a failed send every 500 ms (TCP_RESOURCE_PROBE_INTERVAL) while the budget keeps counting"
        )
    ceiling = plateau([b.time - a.time for a, b in itertools.pairwise(sends)])
    # ICMP errors that undo a backoff step each hold the gaps level too (measured on 6.18: at
    # 4.096 s, the step before the first error), with no ceiling set: no hint then.
    if ceiling is not None and s.rto_max == TCP_RTO_MAX and not reverting:
        out.append(
            f"the retransmissions stopped doubling at {ceiling:.3f} s apart: the RTO has a lower ceiling "
            "than 120 s (tcp_rto_max_ms, or TCP_RTO_MAX_MS on the socket, kernels from 6.15), which also "
            "shortens tcp_retries2's budget; give the setting "
            f"(about --sysctl tcp_rto_max_ms={ceiling_ms(ceiling)}) for the model's end"
        )
    probing = _mtu_probing_note(s)
    if probing is not None:
        out.append(probing)
    fallback = fallback_note(conn, side, sends, rto)
    if fallback is not None:
        out.append(fallback)
    watched = end - sends[0].time
    if len(sends) == 1 and watched > 2 * TCP_RTO_MIN:
        out.append(
            f"no retransmission of the segment appears in the {watched:.3f} s the capture goes on: "
            "they did not reach the capture point, as when sends fail locally, or the capture was taken "
            "where they were lost"
        )
    # Budgets that fit the doubling timer say nothing where errors undid its steps.
    if (
        p.observed_s is not None
        and not s.user_timeout
        and not p.upper_bound
        and ceiling is None
        and not reverting
    ):
        observed = p.observed_s
        budgets = _BUDGETS if s.rto_max == TCP_RTO_MAX else _budgets(s.rto_max)
        ends = rto_aborts_from_stamp(list(budgets.values()), rto, rto_max=s.rto_max, linear=linear)
        fits = [n for n, e in zip(budgets, ends, strict=True) if abs(e - observed) <= TOLERANCE * observed]
        if fits and s.retries2 not in fits:
            shown = " or ".join(f"tcp_retries2={n} ({budgets[n]:g} s)" for n in fits[:3])
            out.append(f"{shown} fits what the capture shows")
    return out


@functools.lru_cache(maxsize=64)
def _mtu_probing_note(s: KernelSettings) -> str | None:
    """With tcp_mtu_probing on, a timer fire past tcp_retries1's budget shrinks the MSS
    (tcp_write_timeout's black-hole detection, tcp_mtu_probing): if the segments were lost for
    their size, the smaller ones get through and there is no abort. The packets cannot tell a
    path-MTU black hole from a dead path, so the abort is only the model's end if both are lost.
    Both checks run in each fire, the shrink first: with the abort's budget no longer than
    tcp_retries1's they come in the same fire, and the connection ends. Budgets, not fire times,
    decide here: the budget's start may be a fast retransmission the capture labels out of
    order (Wireshark's rule), which moves the model's fires (measured: the kernel shrank 3.15 s
    after it, 2.94 s after the model's stamp).
    Measured on 6.18, the path's ICMP dropped: with 1 and MTU 1280, 1448-byte segments re-sent
    as 1024 (tcp_base_mss) at the first fire past 3 s; with 2 (1024 from the start) and MTU
    1000, as 512; the connection went on both times; with 0 it ended in ETIMEDOUT."""
    shrink = rto_abort_after(s.retries1, rto_max=s.rto_max)
    limit = s.user_timeout or rto_abort_after(s.retries2, rto_max=s.rto_max)
    if not s.mtu_probing or limit <= shrink:
        return None
    return (
        f"with {s.label('mtu_probing')}, the first timer fire past {s.label('retries1')}'s budget "
        f"({shrink:g} s after the first retransmission) shrinks the segments (black-hole detection): "
        "if only the large ones were lost (a path-MTU black hole whose ICMP never came back), the "
        "smaller re-sends get through and the connection goes on; this abort holds only if small "
        "segments are lost too"
    )
