"""Retransmission timeouts of established connections, checked on the real kernel.

The budget (tcp_retries2 through tcp_model_timeout, or TCP_USER_TIMEOUT) counts from
retrans_stamp, the first RTO retransmission of the head; a tail-loss probe does not start it.
"""

from __future__ import annotations

import itertools

import pytest

from orchestrator.pcap.reader import FIN, RST, TcpPacket
from tests.helpers.netns import A_ADDR, CaseResult
from tests.realkernel.conftest import Cases
from tests.realkernel.measure import (
    WHEEL_SLACK,
    Train,
    error_time,
    gaps,
    on_time,
    packets,
    rst_times,
    ss_timer,
    stalled_train,
    tcp_model_timeout,
)

pytestmark = pytest.mark.netns


def train_of(result: CaseResult) -> tuple[Train, list[float]]:
    train = stalled_train(packets(result, "a"))
    return train, train.rto_retransmissions(result.counters["a"].get("TcpExtTCPLossProbes", 0))


def assert_budget_rule(result: CaseResult, budget: float) -> None:
    """The abort is the first retransmission-timer expiry at or past r1 + budget: every RTO
    retransmission came before it, and the abort came one doubled RTO after the last one."""
    _, retrans = train_of(result)
    abort, errno = error_time(result)
    r1 = retrans[0]
    assert errno == "ETIMEDOUT"
    assert all(t - r1 < budget for t in retrans), (retrans, budget)
    assert abort - r1 >= budget - 0.01, (abort - r1, budget)
    last_gap = gaps(retrans)[-1]
    assert on_time(abort - retrans[-1], 2 * last_gap), (abort - retrans[-1], last_gap)
    for before, now in itertools.pairwise(gaps(retrans)):
        # Exponential backoff; `before` may itself have fired late, hence the slack both ways.
        assert on_time(now, 2 * before, early=WHEEL_SLACK), gaps(retrans)
    after_cut = [p for p in packets(result, "a") if p.src == A_ADDR and p.flags & (RST | FIN)]
    assert not after_cut, "an RTO abort sends neither RST nor FIN"


@pytest.mark.realcase("retries2_3")
def test_retries2_3_abort_is_first_expiry_past_budget(cases: Cases) -> None:
    assert_budget_rule(cases.get("retries2_3"), tcp_model_timeout(3))


@pytest.mark.realcase("retries2_4")
def test_retries2_4_abort_is_first_expiry_past_budget(cases: Cases) -> None:
    assert_budget_rule(cases.get("retries2_4"), tcp_model_timeout(4))


@pytest.mark.realcase("retries2_3_rto_min_1s")
def test_budget_counts_rto_min_units_whatever_the_rto(cases: Cases) -> None:
    """A route rto_min of 1 s: two RTO retransmissions instead of four, same 3.0 s budget."""
    result = cases.get("retries2_3_rto_min_1s")
    train, retrans = train_of(result)
    assert retrans[0] - train.original >= 1.0 + 0.2  # the TLP (PTO uses the route's rto_min) + an RTO
    assert_budget_rule(result, tcp_model_timeout(3))


@pytest.mark.realcase("user_timeout_3000", "user_timeout_2000")
@pytest.mark.parametrize("timeout_ms", [3000, 2000])
def test_user_timeout_counts_from_first_retransmission(cases: Cases, timeout_ms: int) -> None:
    result = cases.get(f"user_timeout_{timeout_ms}")
    train, retrans = train_of(result)
    abort, errno = error_time(result)
    assert errno == "ETIMEDOUT"
    # tcp_clamp_rto_to_user_timeout: the last timer is cut short to land on r1 + timeout.
    assert abs(abort - retrans[0] - timeout_ms / 1000) < 0.1, abort - retrans[0]
    assert abort - train.original > timeout_ms / 1000 + 0.3  # not counted from the original send


@pytest.mark.realcase("tlp_one_segment")
def test_one_segment_first_resend_is_a_tail_loss_probe(cases: Cases) -> None:
    result = cases.get("tlp_one_segment")
    train, retrans = train_of(result)
    assert result.counters["a"].get("TcpExtTCPLossProbes") == 1
    first = train.first_after_original
    assert first.kind == "head"  # nothing new to send: the probe re-sends the segment
    assert 0.2 <= first.t - train.original <= 0.26  # PTO = 2*SRTT + rto_min (one segment out)
    # After a probe the RTO is re-armed from it, not doubled.
    assert 0.2 <= retrans[0] - first.t <= 0.26


@pytest.mark.realcase("tlp_one_segment_user_timeout_2000")
def test_tail_loss_probe_does_not_start_the_user_timeout(cases: Cases) -> None:
    result = cases.get("tlp_one_segment_user_timeout_2000")
    train, retrans = train_of(result)
    abort, _ = error_time(result)
    assert abs(abort - retrans[0] - 2.0) < 0.1  # from the RTO retransmission
    assert abort - train.first_after_original.t > 2.15  # not from the probe, 0.2 s earlier


@pytest.mark.realcase("tlp_nagle")
def test_tail_loss_probe_carries_data_nagle_held(cases: Cases) -> None:
    result = cases.get("tlp_nagle")
    train, retrans = train_of(result)
    first = train.first_after_original
    assert result.counters["a"].get("TcpExtTCPLossProbes") == 1
    assert first.kind == "new", train.sends[:3]
    assert 0.2 <= first.t - train.original <= 0.26
    assert retrans[0] > first.t  # the head is re-sent later, by the RTO


@pytest.mark.realcase("ack_lost_one_way")
def test_lost_acks_look_like_a_cut_to_the_sender(cases: Cases) -> None:
    result = cases.get("ack_lost_one_way")
    assert_budget_rule(result, tcp_model_timeout(3))
    train, retrans = train_of(result)
    server = packets(result, "b")

    def copies_in(pkts: list[TcpPacket]) -> list[TcpPacket]:
        return [p for p in pkts if p.src == A_ADDR and p.seq == train.head_seq and p.payload_len]

    copies = copies_in(server)
    sent = copies_in(packets(result, "a"))  # the timer's and, if one re-sent the head, a loss probe's
    assert len(sent) >= 1 + len(retrans)
    assert len(copies) == len(sent)  # the server received every copy...
    acks = [p for p in server if p.dst == A_ADDR and p.time >= copies[0].time]
    assert len(acks) >= len(copies)  # ...and acknowledged each one
    assert result.event("server", "error") is None
    assert not rst_times(server, A_ADDR)


@pytest.mark.realcase("capture_stops_while_retrying")
def test_ss_shows_the_retransmit_timer_while_retrying(cases: Cases) -> None:
    result = cases.get("capture_stops_while_retrying")
    _, retrans = train_of(result)
    timer = ss_timer(result.ss["a"])
    assert timer is not None and timer[0] == "on", result.ss["a"]
    assert timer[2] == len(retrans)  # icsk_retransmits: RTO retransmissions, the probe not counted
    assert "ESTAB" in result.ss["a"]
    assert result.event("client", "error") is None
