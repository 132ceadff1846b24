"""Zero-window probing on the real kernel: a receiver that never reads."""

from __future__ import annotations

import itertools

import pytest

from tests.realkernel.conftest import Cases
from tests.realkernel.measure import WHEEL_SLACK, gaps, on_time, packets, zero_window_probes

pytestmark = pytest.mark.netns

INVALID_RATELIMIT_S = 0.5  # net.ipv4.tcp_invalid_ratelimit default: out-of-window ACKs


@pytest.mark.realcase("zero_window")
def test_zero_window_probes_back_off_and_are_answered(cases: Cases) -> None:
    result = cases.get("zero_window")
    zw = zero_window_probes(packets(result, "a"))
    assert len(zw.probes) >= 4
    steps = gaps([zw.closed_at, *zw.probes])
    # tcp_send_probe0: the interval doubles from the RTO until icsk_backoff reaches
    # tcp_retries2 (3 here), then stays.
    retries2 = int(result.sysctls["a"]["net.ipv4.tcp_retries2"])
    for i, (before, now) in enumerate(itertools.pairwise(steps)):
        factor = 2 if i < retries2 else 1
        assert on_time(now, factor * before, early=WHEEL_SLACK), steps
    # The probe (seq = snd_una - 1) is out of window: the answer is rate-limited.
    last_answer = None
    for probe, answer in zip(zw.probes, zw.answers, strict=True):
        due = last_answer is None or probe - last_answer >= INVALID_RATELIMIT_S
        assert (answer is not None) == due, (probe, answer, last_answer)
        last_answer = answer if answer is not None else last_answer
    # Answered probes reset icsk_probes_out: 6 s of probing outlives the 3 s tcp_retries2 budget.
    assert result.event("client", "error") is None
    assert result.event("client", "blocked") is not None
