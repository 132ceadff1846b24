"""One line of named numbers per case run: what docs/kernel-facts.md tabulates (min-max over runs).

Times are seconds, relative to the moment named in the key ("after_r1": after the first RTO
retransmission of the head; "after_orig": after its original send).
"""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers.netns import A_ADDR, B_ADDR, CaseResult
from tests.realkernel.measure import (
    error_time,
    gaps,
    icmp_errors,
    keepalive_probes,
    packets,
    rst_times,
    ss_timer,
    stalled_train,
    syn_times,
    synack_times,
    tcp_model_timeout,
    zero_window_probes,
)

Figures = dict[str, float | int | str]


def rounded(values: list[float]) -> str:
    return " ".join(f"{v:.3f}" for v in values)


def train_figures(result: CaseResult) -> Figures:
    train = stalled_train(packets(result, "a"))
    probes = result.counters["a"].get("TcpExtTCPLossProbes", 0)
    retrans = train.rto_retransmissions(probes)  # retrans[0] is "r1"
    first = train.first_after_original
    out: Figures = {
        "loss_probes": probes,
        "first_after_orig": first.t - train.original,
        "first_kind": ("tlp-" if probes else "rto-") + first.kind,
        "r1_after_orig": retrans[0] - train.original,
        "n_rto_retrans": len(retrans),
        "retrans_after_r1": rounded([t - retrans[0] for t in retrans]),
        "rto_gaps": rounded(gaps(retrans)),
    }
    event = result.event("client", "error")
    if event is not None:
        t, errno = error_time(result)
        out |= {"errno": errno, "abort_after_r1": t - retrans[0], "abort_after_orig": t - train.original}
        out["abort_after_first_resend"] = t - first.t
        out["abort_after_last_retrans"] = t - retrans[-1]
    retries2 = result.settings.get("retries2")
    if isinstance(retries2, int):
        out["budget"] = tcp_model_timeout(retries2)
    if "user_timeout_ms" in result.settings:
        out["budget"] = result.settings["user_timeout_ms"] / 1000
    return out


def syn_figures(result: CaseResult) -> Figures:
    syns = syn_times(packets(result, "a"))
    t, errno = error_time(result)
    return {
        "n_syn": len(syns),
        "syn_after_first": rounded([s - syns[0] for s in syns]),
        "errno": errno,
        "abort_after_first_syn": t - syns[0],
        "linear_timeouts": result.marks.get("syn_linear_timeouts", -1),
    }


def synack_figures(result: CaseResult) -> Figures:
    server = packets(result, "b")
    synacks = synack_times(server)
    rsts = rst_times(server, B_ADDR)
    _, errno = error_time(result)
    heal = result.fault("heal")
    return {
        "n_synack": len(synacks),
        "synack_after_first": rounded([s - synacks[0] for s in synacks]),
        "rst_after_first_synack": rsts[0] - synacks[0] if rsts else -1.0,
        "client_errno": errno,
        "server_accepted": int(result.event("server", "accepted") is not None),
        "expected_expiry": result.marks["expected_expiry_s"],
        "heal_after_first_synack": (heal.after if heal else 0) - synacks[0],
    }


def keepalive_figures(result: CaseResult) -> Figures:
    ka = keepalive_probes(packets(result, "a"))
    t, errno = error_time(result)
    unanswered = [p for p, ok in zip(ka.probes, ka.answered, strict=True) if not ok]
    return {
        "n_probes": len(ka.probes),
        "answered": sum(ka.answered),
        "probe_after_connect": ka.probes[0] - result.event("client", "connected").t,  # type: ignore[union-attr]
        "unanswered_gaps": rounded(gaps([ka.last_received, *unanswered])),
        "rst_after_last_rx": (ka.rst or 0) - ka.last_received,
        "errno": errno,
        "abort_after_last_rx": t - ka.last_received,
    }


def icmp_figures(result: CaseResult) -> Figures:
    errors = icmp_errors(result, "a")
    syns = syn_times(packets(result, "a"))
    t, errno = error_time(result)
    before = [e.time for e in errors if e.time <= t]
    return {
        "n_syn": len(syns),
        "n_icmp": len(errors),
        "icmp_code": errors[0].code if errors else -1,
        "first_icmp_after_syn_ms": (errors[0].time - syns[0]) * 1000 if errors else -1.0,
        "errno": errno,
        "abort_after_last_icmp_ms": (t - before[-1]) * 1000 if before else -1.0,
        "abort_after_first_syn": t - syns[0],
        "lock_dropped_icmps": result.counters["a"].get("TcpExtLockDroppedIcmps", 0),
    }


def capture_stop_figures(result: CaseResult) -> Figures:
    train = stalled_train(packets(result, "a"))
    timer = ss_timer(result.ss["a"])
    return {
        "n_rto_retrans": len(train.rto_retransmissions(result.counters["a"].get("TcpExtTCPLossProbes", 0))),
        "ss_timer": f"timer:({timer[0]},{timer[1]},{timer[2]})" if timer else "none",
        "stop_after_last_retrans": result.marks["capture_stopped"] - train.retransmissions[-1],
        "error_event": int(result.event("client", "error") is not None),
    }


def zero_window_figures(result: CaseResult) -> Figures:
    zw = zero_window_probes(packets(result, "a"))
    return {
        "n_probes": len(zw.probes),
        "answered": sum(a is not None for a in zw.answers),
        "probe_gaps": rounded(gaps([zw.closed_at, *zw.probes])),
        "client_error": int(result.event("client", "error") is not None),
    }


def ack_lost_figures(result: CaseResult) -> Figures:
    out = train_figures(result)
    server = packets(result, "b")
    head = stalled_train(packets(result, "a")).head_seq
    copies = [p for p in server if p.src == A_ADDR and p.seq == head and p.payload_len > 0]
    received = [e.fields.get("total", 0) for e in result.events["server"] if e.name == "received"]
    sent = [e.fields.get("total", 0) for e in result.events["client"] if e.name == "sent"]
    out |= {
        "server_copies_of_head": len(copies),
        "server_received": int(max(received or [0])),
        "client_sent": int(max(sent or [0])),
        "server_dsack": result.counters["b"].get("TcpExtTCPDSACKOldSent", 0),
    }
    return out


FIGURES: dict[str, Callable[[CaseResult], Figures]] = {
    "retries2_3": train_figures,
    "retries2_4": train_figures,
    "retries2_3_rto_min_1s": train_figures,
    "user_timeout_3000": train_figures,
    "user_timeout_2000": train_figures,
    "syn_retries_1": syn_figures,
    "syn_retries_2": syn_figures,
    "synack_retries_1": synack_figures,
    "synack_retries_2": synack_figures,
    "keepalive_answered_then_cut": keepalive_figures,
    "icmp_host_unreachable": icmp_figures,
    "capture_stops_while_retrying": capture_stop_figures,
    "tlp_one_segment": train_figures,
    "tlp_one_segment_user_timeout_2000": train_figures,
    "tlp_nagle": train_figures,
    "zero_window": zero_window_figures,
    "ack_lost_one_way": ack_lost_figures,
}
