"""Handshakes that never complete: a connect never answered, one ended by ICMP, and a
listener's SYN-ACK never acknowledged.

* SYN_SENT (``tcp_write_timeout``): the connect fails with ETIMEDOUT at the first expiry of
  the SYN's timer where the SYN went out ``tcp_syn_retries`` + ``tcp_syn_linear_timeouts``
  times again, or where ``tcp_model_timeout(tcp_syn_retries, 1 s)`` has passed since the
  first SYN (`timers.syn_schedule`). It is not ``tcp_retries2``'s business.
* An ICMP error about the SYN (any destination-unreachable code, time exceeded, parameter
  problem) ends the connect with its errno (EHOSTUNREACH, ENETUNREACH, ECONNREFUSED, ...) the
  moment the kernel handles it with the socket free; one that arrives while connect() still
  holds the socket (on a fast path, the answer to the first SYN) is only kept as a soft
  error, and the connect fails on the next.
  That is not a timeout. If no error answers a later SYN, the connect fails at the SYN's
  timeout, with the soft error's errno (measured on 6.18: EHOSTUNREACH at 7.13 s).
* SYN_RECV: the listener re-sends its SYN-ACK at 1 s doubling and drops the half-open
  request at the expiry after ``tcp_synack_retries`` of them; nothing is sent, and the
  listening app is never told (it never accepted the connection). An ICMP error about the
  SYN-ACK that Linux counts as fatal drops the request at once (`soft_errors.drops_request`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from orchestrator.kernel.predict import BoundWords, KernelPrediction, observe_between, ref
from orchestrator.kernel.settings import KernelSettings
from orchestrator.kernel.soft_errors import drops_request, errno_of, name_of, quoting
from orchestrator.kernel.timer_reading import head_sends
from orchestrator.kernel.timers import TCP_RTO_MAX, TCP_TIMEOUT_INIT, syn_schedule, synack_schedule
from orchestrator.pcap.icmp import IcmpError
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side


def predict(
    conn: ConnectionSummary, side: Side, s: KernelSettings, icmp: Sequence[IcmpError], end: float
) -> KernelPrediction | None:
    first = conn.oldest_unacked
    if conn.handshake != "partial" or first is None or conn.oldest_unacked_from != side:
        return None
    sends = head_sends(conn, side, first)
    if side == "client" and conn.syn == first:
        errors = [e for e in quoting(icmp, conn, side) if e.time >= first.time]
        if errors and not [f for f in sends if f.time > errors[-1].time]:
            return _icmp_ended(conn, sends, errors, end)
        p = _connect_timeout(sends, s, end)
        if errors:  # each came while connect() held the socket: kept as a soft error only
            last = errors[-1]
            p.app_error = errno_of(last)
            p.explanations.append(
                f"the SYN was sent again after the {name_of(last)} from {last.src} (frame {last.frame}): it "
                "came while connect() still held the socket, and Linux only kept it as a soft error "
                f"(LockDroppedIcmps); the connect fails at the SYN's timeout with {p.app_error}, not "
                "ETIMEDOUT"
            )
        return p
    if side == "server" and conn.syn is not None and first.time >= conn.syn.time:
        dropping = [e for e in quoting(icmp, conn, side) if e.time >= first.time and drops_request(e)]
        if dropping:
            return _request_dropped(sends, dropping[0], end)
        return _synack_timeout(sends, s, end)
    return None


def _unclamped_expiry(seen: int, s: KernelSettings) -> float:
    """The SYN timer's next expiry after the `seen`-th retransmission, seconds after the first
    SYN, without a user timeout's clamp (it would send another SYN)."""
    model, _abort = syn_schedule(
        seen + 1, linear_timeouts=s.syn_linear_timeouts, user_timeout=1e9, rto_max=s.rto_max
    )
    return model[seen]


_BOUNDS = BoundWords(
    "between {lo:.3f} and {hi:.3f} s after the first SYN: no SYN after the one {lo:.3f} s after it, up "
    "to {bound}; the user timeout's clamp ends the connect in between, at a time the packets cannot "
    "show (nothing is sent); the app's error time can",
    "the SYN timer's next expiry",
    "the capture ends with the SYN {lo:.3f} s after the first: it cannot show whether more followed",
)


def _request_dropped(sends: list[FrameRef], e: IcmpError, end: float) -> KernelPrediction:
    frame = FrameRef(e.file, e.frame, e.time)
    p = KernelPrediction(
        "icmp-error",
        "server",
        0.0,
        e.time,
        f"the {name_of(e)} from {e.src} about the SYN-ACK ({ref(frame)})",
        "an ICMP error Linux counts as fatal drops a half-open request at once (tcp_req_err), "
        "silently: not tcp_synack_retries' timeout",
        start_frame=frame,
        app_error="nothing",
    )
    later = [f for f in sends if f.time > e.time]
    if later:
        p.observed = f"the server sent the SYN-ACK again after it ({ref(later[0])}): the request was kept"
    elif end - e.time < TCP_TIMEOUT_INIT:
        p.observed = "the capture ends before the SYN-ACK's timer would have fired again: it cannot show it"
    else:
        p.observed_s = 0.0
        p.observed = "no SYN-ACK after it: the request was dropped there"
    return p


def _connect_timeout(sends: list[FrameRef], s: KernelSettings, end: float) -> KernelPrediction:
    first = sends[0]
    model, abort = syn_schedule(
        s.syn_retries,
        linear_timeouts=s.syn_linear_timeouts,
        user_timeout=s.user_timeout or None,
        rto_max=s.rto_max,
    )
    limit = (
        f"{s.label('user_timeout')} (in tcp_model_timeout({s.syn_retries}, 1 s)'s place; the SYN's "
        "timer is clamped to it)"
        if s.user_timeout
        else f"tcp_model_timeout({s.syn_retries}, 1 s)"
    )
    basis = (
        f"{s.label('syn_retries')}, {s.label('syn_linear_timeouts')}: {len(model)} SYN retransmissions, "
        f"ETIMEDOUT at the expiry where the count is reached or {limit} has passed since the first SYN"
    )
    if s.rto_max != TCP_RTO_MAX:
        basis += f"; the SYN's timer capped by {s.label('rto_max')}, which also shortens the budget"
    p = KernelPrediction(
        "connect-timeout",
        "client",
        abort,
        first.time,
        f"the first SYN ({ref(first)})",
        basis,
        start_frame=first,
    )
    p.beyond_capture = p.at > end
    expected = model
    seen = len(sends) - 1
    if seen > len(model):  # the capture went on past the model's end: the timer's next expiry
        # after the last SYN, as the kernel's timer runs whatever the limits (never the model's
        # own end, which the capture already contradicts)
        model, abort = syn_schedule(
            seen + 1, linear_timeouts=s.syn_linear_timeouts, user_timeout=1e9, rto_max=s.rto_max
        )
        model, abort = model[:seen], model[seen]
    slack = _slack(sends, model)
    nxt = (abort if seen >= len(model) else model[seen]) * slack
    after = _unclamped_expiry(seen, s) * slack if s.user_timeout and seen >= len(model) else None
    if first.time + nxt > end:
        p.observed = (
            f"still connecting when the capture ended, +{end - first.time:.3f} s after the first SYN "
            f"({seen} retransmissions so far)"
        )
    elif after is not None and nxt < after:
        observe_between(p, sends[-1].time - first.time, after, end - first.time, _BOUNDS)
    else:
        p.observed_s = round(nxt, 6)
        p.observed = (
            f"inferred: no SYN after the one {sends[-1].time - first.time:.3f} s after the first, so the "
            "connect failed when the SYN's timer fired next"
        )
    # More than the model allows is a contradiction even while the capture goes on.
    if seen != len(expected) and (p.observed_s is not None or p.observed_window or seen > len(expected)):
        p.explanations.append(
            f"{seen} SYN retransmissions were captured, the model gives {len(expected)} "
            f"(at {', '.join(f'+{t:g}' for t in expected)} s after the first SYN)"
            + (
                "; kernels before 6.5 have no linear timeouts: tcp_syn_linear_timeouts=0"
                if seen == _count(s, 0)
                else ""
            )
        )
    return p


def _count(s: KernelSettings, linear: int) -> int:
    return len(syn_schedule(s.syn_retries, linear_timeouts=linear, rto_max=s.rto_max)[0])


def _slack(sends: list[FrameRef], model: list[float]) -> float:
    """How late this kernel's timers ran (the wheel rounds up): captured over modelled times."""
    pairs = [(b.time - sends[0].time, m) for b, m in zip(sends[1:], model, strict=False) if m > 0]
    if not pairs:
        return 1.0
    return max(1.0, sum(a for a, _ in pairs) / sum(m for _, m in pairs))


def _icmp_ended(
    conn: ConnectionSummary, sends: list[FrameRef], errors: list[IcmpError], end: float
) -> KernelPrediction:
    last = errors[-1]
    frame = FrameRef(last.file, last.frame, last.time)
    errno = errno_of(last)
    p = KernelPrediction(
        "icmp-error",
        "client",
        0.0,
        last.time,
        f"the {name_of(last)} from {last.src} about the SYN ({ref(frame)})",
        f"an ICMP error about the SYN (destination unreachable, whatever the code, time exceeded or "
        f"parameter problem) ends a connect at once, with {errno}: not a timeout",
        start_frame=frame,
        app_error=errno,
    )
    if end - last.time < TCP_TIMEOUT_INIT:  # (no SYN after it: `predict` sends those to the timeout)
        p.observed = "the capture ends before the SYN's timer would have fired again: it cannot show the end"
    else:
        p.observed_s = 0.0
        p.observed = "no SYN after it: the connect ended there"
    p.explanations.append(
        f"the connect was ended by {name_of(last)} from {last.src} at +{last.time - sends[0].time:.3f} s "
        f"after the first SYN; the app is told {errno}"
    )
    if len(errors) > 1:
        p.explanations.append(
            f"the connect was ended by the last of {len(errors)} ICMP errors: an earlier one (frame "
            f"{errors[0].frame}) came while connect() still held the socket, and Linux only kept it as a "
            "soft error (LockDroppedIcmps); the SYN was sent again, and its answer ended the connect"
        )
    return p


def _synack_timeout(sends: list[FrameRef], s: KernelSettings, end: float) -> KernelPrediction:
    first = sends[0]
    model, drop = synack_schedule(s.synack_retries)
    p = KernelPrediction(
        "synack-timeout",
        "server",
        drop,
        first.time,
        f"the first SYN-ACK ({ref(first)})",
        f"{s.label('synack_retries')}: the SYN-ACK re-sent at "
        f"{', '.join(f'+{t:g}' for t in model) + ' s after the first' if model else 'no time'}, "
        "the half-open request dropped "
        "silently at the next expiry",
        start_frame=first,
        app_error="nothing",
    )
    p.beyond_capture = p.at > end
    expected = model
    seen = len(sends) - 1
    if seen > len(model):  # past the model's end: the request timer's next expiry after the last
        model, drop = synack_schedule(seen)
    slack = _slack(sends, model)
    nxt = (drop if seen >= len(model) else model[seen]) * slack
    if first.time + nxt > end:
        p.observed = f"the capture ends +{end - first.time:.3f} s after the first SYN-ACK, before the drop"
    else:
        p.observed_s = round(nxt, 6)
        p.observed = (
            f"inferred: no SYN-ACK after the one {sends[-1].time - first.time:.3f} s after the first, so "
            "the request was dropped when its timer fired next (a drop sends nothing)"
        )
    gaps = [round(b.time - a.time, 3) for a, b in itertools.pairwise(sends)]
    if seen != len(expected) and p.observed_s is not None:
        p.explanations.append(
            f"{seen} SYN-ACK retransmissions were captured (gaps {gaps}), the model gives {len(expected)}"
        )
    return p
