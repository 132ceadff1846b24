"""Connection establishment on the real kernel: SYN and SYN-ACK retransmissions, ICMP errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file
from tests.helpers.netns import A_ADDR, B_ADDR
from tests.realkernel.conftest import Cases
from tests.realkernel.measure import (
    error_time,
    icmp_errors,
    on_time,
    packets,
    rst_times,
    syn_schedule,
    syn_times,
    synack_times,
)

pytestmark = pytest.mark.netns


@pytest.mark.realcase("syn_retries_1", "syn_retries_2")
@pytest.mark.parametrize("retries", [1, 2])
def test_syn_retries_schedule_and_abort(cases: Cases, retries: int) -> None:
    result = cases.get(f"syn_retries_{retries}")
    linear = int(result.marks["syn_linear_timeouts"])
    expected_syns, expected_abort = syn_schedule(retries, linear)
    syns = syn_times(packets(result, "a"))
    abort, errno = error_time(result)
    assert errno == "ETIMEDOUT"
    assert len(syns) == len(expected_syns), [s - syns[0] for s in syns]
    for got, want in zip(syns[1:], expected_syns[1:], strict=True):
        assert on_time(got - syns[0], want), (got - syns[0], want)
    assert on_time(abort - syns[0], expected_abort), (abort - syns[0], expected_abort)


@pytest.mark.realcase("synack_retries_1", "synack_retries_2")
@pytest.mark.parametrize("retries", [1, 2])
def test_synack_retries_then_request_dropped(cases: Cases, retries: int) -> None:
    result = cases.get(f"synack_retries_{retries}")
    server = packets(result, "b")
    synacks = synack_times(server)
    expected = [float(2**k - 1) for k in range(retries + 1)]  # 1 s timer, doubling: 0, 1, 3
    assert len(synacks) == retries + 1, [s - synacks[0] for s in synacks]
    for got, want in zip(synacks[1:], expected[1:], strict=True):
        assert on_time(got - synacks[0], want)
    # The client believed it was connected; its first data after b gave up meets an RST.
    assert result.event("client", "connected") is not None
    assert rst_times(server, B_ADDR), "no RST: the listener still knew the request"
    assert error_time(result)[1] == "ECONNRESET"
    assert result.event("server", "accepted") is None


@pytest.mark.realcase("icmp_host_unreachable")
def test_icmp_host_unreachable_ends_connect(cases: Cases) -> None:
    result = cases.get("icmp_host_unreachable")
    errors = icmp_errors(result, "a")
    syns = syn_times(packets(result, "a"), A_ADDR)
    abort, errno = error_time(result)
    assert errno == "EHOSTUNREACH"
    assert errors and all(e.code == 1 for e in errors)
    assert 0 <= abort - errors[-1].time < 0.005  # at once after the ICMP it acted on
    # An ICMP that arrives while connect() still holds the socket lock only sets the soft
    # error (tcp_v4_err; counted as LockDroppedIcmps): the connect goes on to the next SYN.
    dropped = result.counters["a"].get("TcpExtLockDroppedIcmps", 0)
    assert len(syns) == len(errors) == 1 + dropped


@pytest.mark.realcase("syn_user_timeout_2500")
def test_a_user_timeout_clamps_the_syn_timer(cases: Cases) -> None:
    """TCP_USER_TIMEOUT=2500 before connect(): SYNs at 0, 1, 2 s and ETIMEDOUT at 2.5 s (the
    timer clamped to the user timeout), not at the 3 s expiry; the model says the same."""
    result = cases.get("syn_user_timeout_2500")
    syns = syn_times(packets(result, "a"))
    abort, errno = error_time(result)
    assert errno == "ETIMEDOUT"
    assert len(syns) == 3, [s - syns[0] for s in syns]
    assert on_time(abort - syns[0], 2.5), abort - syns[0]
    analysis = analyze_file(Path(result.pcaps["a"]))
    (conn,) = analysis.connections
    s = parse_settings([], ["TCP_USER_TIMEOUT=2500"])
    (p,) = predict_connection(conn, lambda _: s, analysis.icmp_errors, abort + 0.1)
    assert p.kind == "connect-timeout" and p.within_tolerance is True, p.describe()
