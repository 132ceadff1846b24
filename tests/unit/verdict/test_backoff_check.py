"""The `backoff: doubling` check on gap series: where it must pass and where it must not."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.verdict.expectations import check_backoff
from tests.unit.verdict.test_socket_reconcile import bare

TOL = 0.10


def judged(gaps: list[float]) -> bool:
    conn = dataclasses.replace(bare("10.0.0.2:40000", "10.0.0.1:7000"), backoff_gaps_s=gaps)
    return check_backoff(conn, TOL, [], None).passed


@pytest.mark.parametrize(
    "gaps",
    [
        [0.414, 0.436, 0.832, 1.664],  # a tail-loss probe first, then doubling RTOs
        [0.433, 0.428, 0.868],  # three retransmissions: tcp_retries2=3 aborting at its 3rd expiry
        [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 120.0, 120.0],  # the RTO ceiling
    ],
)
def test_doubling_passes(gaps: list[float]) -> None:
    assert judged(gaps)


@pytest.mark.parametrize(
    "gaps",
    [
        [],  # nothing retransmitted
        [0.41, 0.43],  # two retransmissions: one gap after the first, nothing to compare
        [1.02, 1.024, 1.024, 1.024, 1.024],  # linear SYN timeouts (tcp_syn_linear_timeouts)
        [0.2, 0.4, 0.8, 0.8],  # one flat step among doublings
        [0.2, 0.4, 1.2],  # tripling
        [0.2, 30.0, 60.0, 60.0],  # flat below the ceiling
    ],
)
def test_anything_else_fails(gaps: list[float]) -> None:
    assert not judged(gaps)


def test_too_few_retransmissions_is_said() -> None:
    conn = dataclasses.replace(bare("10.0.0.2:40000", "10.0.0.1:7000"), backoff_gaps_s=[0.41, 0.43])
    check = check_backoff(conn, TOL, [0.2, 0.4, 0.8], None)
    assert check.evidence[0] == "ratios -: fewer than 3 retransmissions of one segment"
    assert check.evidence[1] == "model gaps 0.2, 0.4"
