"""ICMP errors by kind and IP version, on captures recorded on 6.18 in three namespaces
(client — router — server, IPv4 and IPv6, nft `reject with icmp[v6] type ...` in the router's
forward chain, ICMP rate limits off there), the app's errno and time printed by the client.

* rto6_no_route / rto6_addr_unreachable / rto4_host_unreachable: tcp_retries2=5, then the
  router rejects each of the client's segments. No route undoes a backoff step each time (the
  gaps stay at 0.204 s, ENETUNREACH); address unreachable does not (the gaps double,
  EHOSTUNREACH): tcp_v6_err reverts on ICMPV6_NOROUTE only. IPv4 host unreachable reverts
  too: EHOSTUNREACH at 1796182272.161532, one level gap (0.204 s) after the last retransmission.
* connect{4,6}_{ttl,hops}_exceeded: TTL / hop limit 1 on the client's socket, the router answers
  each SYN with time exceeded; connect() fails with EHOSTUNREACH at the second (1.02 s).
* connect{4,6}_*_first_syn_only: the router answers only the first SYN (host / address
  unreachable), then drops the SYNs (tcp_syn_retries=2): that error came while connect() held
  the socket, so it was only kept as a soft error; the connect fails at the SYN's timeout,
  with EHOSTUNREACH (at 1796183303.429391 and 1796183311.749460).
* rto4_healed_then_cut: host unreachable for 1.5 s (8 errors), then the path heals and the
  data is acknowledged, then a silent drop: the app gets ETIMEDOUT, not EHOSTUNREACH (the ACK
  cleared the soft error).
* synack*: the router rejects the server's SYN-ACK (the server's capture): v4 host unreachable
  and v6 administratively prohibited drop the half-open request (no SYN-ACK is re-sent), v6
  address unreachable does not (SYN-ACKs at +1, +3, +7 s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "icmp_kinds"
HOST_UNREACHABLE_ERROR = 1796182272.161532  # the client's EHOSTUNREACH, epoch s


def predict(name: str, end: float | None = None) -> KernelPrediction:
    analysis = analyze_file(RECORDED / f"{name}.pcap")
    conn = max(analysis.connections, key=lambda c: c.packets)
    s = parse_settings(["tcp_retries2=5", "tcp_syn_retries=2"], [])
    found = predict_connection(conn, lambda _: s, analysis.icmp_errors, end)
    assert len(found) == 1, found
    return found[0]


def test_icmpv6_no_route_undoes_backoff_and_address_unreachable_does_not() -> None:
    (no_route, *_) = analyze_file(RECORDED / "rto6_no_route.pcap").icmp_errors
    (addr, *_) = analyze_file(RECORDED / "rto6_addr_unreachable.pcap").icmp_errors
    assert (no_route.version, no_route.code, no_route.reverts_backoff) == (6, 0, True)
    assert (addr.version, addr.code, addr.reverts_backoff) == (6, 3, False)
    assert predict("rto6_no_route").app_error == "ENETUNREACH"
    p = predict("rto6_addr_unreachable")
    assert p.app_error == "EHOSTUNREACH"
    assert not [e for e in p.explanations if "undid a backoff step" in e]


def test_after_a_reverting_error_the_next_expiry_is_the_level_gap_not_doubled() -> None:
    p = predict("rto4_host_unreachable", HOST_UNREACHABLE_ERROR + 1)
    assert (p.kind, p.app_error) == ("rto-abort", "EHOSTUNREACH")
    assert p.observed_s is not None
    assert abs(p.observed_s - (HOST_UNREACHABLE_ERROR - p.start_time)) <= 0.05
    assert p.within_tolerance is True


@pytest.mark.parametrize("name", ["connect4_ttl_exceeded", "connect6_hops_exceeded"])
def test_time_exceeded_ends_a_connect_with_ehostunreach(name: str) -> None:
    p = predict(name)
    assert (p.kind, p.side, p.app_error) == ("icmp-error", "client", "EHOSTUNREACH")
    assert "time exceeded" in p.start


@pytest.mark.parametrize(
    ("name", "failed"),
    [
        ("connect4_host_first_syn_only", 1796183303.429391),
        ("connect6_addr_first_syn_only", 1796183311.749460),
    ],
)
def test_an_error_the_syn_outlived_ends_the_connect_at_its_timeout(name: str, failed: float) -> None:
    p = predict(name, failed + 1)
    assert (p.kind, p.app_error) == ("connect-timeout", "EHOSTUNREACH")
    assert p.observed_s is not None and abs(p.observed_s - (failed - p.start_time)) <= 0.2
    assert p.within_tolerance is True


def test_an_ack_after_the_errors_clears_the_soft_error() -> None:
    p = predict("rto4_healed_then_cut")
    assert (p.kind, p.app_error) == ("rto-abort", "ETIMEDOUT")
    assert not [e for e in p.explanations if "EHOSTUNREACH" in e]


@pytest.mark.parametrize(
    ("name", "dropped"),
    [
        ("synack4_host_unreachable", True),
        ("synack6_admin_prohibited", True),
        ("synack6_addr_unreachable", False),
    ],
)
def test_fatal_errors_about_the_synack_drop_the_request_at_once(name: str, dropped: bool) -> None:
    p = predict(name, 1e12)
    assert p.side == "server" and p.app_error == "nothing"
    assert p.kind == ("icmp-error" if dropped else "synack-timeout")
    if dropped:
        assert p.predicted_s == 0.0 and p.observed_s == 0.0 and p.within_tolerance is True
