"""Unacknowledged data and a FIN into a cut, recorded in the netns harness: a client sends
100 bytes every 200 ms five times, the cut, 0.3 s later 100 bytes more, then at once
shutdown(SHUT_WR) (and a blocking recv) or close(); tcp_retries2=5 and tcp_orphan_retries=2 in
its namespace.

Measured: after shutdown() the app still holds the socket, and it gets ETIMEDOUT at
tcp_retries2's end (13.6 s after the cut); after close() the socket is an orphan, and the kernel
drops it at tcp_orphan_retries' end (3.5 s after the cut, `ss`), telling no one. The packets are
the same up to the end, so the model gives both ends.

`fin_only_*`, `close_rto_max_2000`: close() (a FIN alone, or after 100 bytes acknowledged) 0.2 s
into a cut, tcp_retries2=5 with tcp_orphan_retries 1 and 3; tcp_orphan_retries=0 with the RTO's
ceiling lowered, tcp_rto_max_ms=1000 and 2000 (tcp_retries2 the default 15). The orphan's
end is read from ss every 0.1 s (last seen, first missing). With the lowered ceiling the orphan
went at the first expiry of a ceiling-long RTO (2.25 and 4.93 s after the first retransmission),
not at 8's budget (7.4 and 13 s): 0 counts as 8 only while the RTO is under the ceiling.

`last_ack_*` (the server's captures): the client close()s, a cut, then the server's app reads
EOF and close()s (tcp_orphan_retries 2, 3) or shutdown(SHUT_WR)s and keeps the socket
(tcp_orphan_retries=1, tcp_retries2=4): its FIN is retransmitted in LAST_ACK until the orphan
goes (ss) or the app gets ETIMEDOUT (SO_ERROR polled every 10 ms), as after a FIN alone; the
capture says `close: fin`, both FINs sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.kernel.timers import rto_abort_after
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "after_fin"
SHUTDOWN_ETIMEDOUT = 1796180643.04556  # the client's error event
CLOSE_GONE = 1796180633.0192606  # the socket first missing from ss (polled every 0.1 s)
SETTINGS = parse_settings(["tcp_retries2=5", "tcp_orphan_retries=2"], [])


def rto_of(name: str, settings: list[str] | None = None, end: float | None = None) -> KernelPrediction:
    analysis = analyze_file(RECORDED / name)
    (conn,) = analysis.connections
    last_ack = name.startswith("last_ack")
    assert conn.close == ("fin" if last_ack else "fin-unanswered")
    s = parse_settings(settings, []) if settings is not None else SETTINGS
    (p,) = predict_connection(conn, lambda _: s, analysis.icmp_errors, end)
    assert p.kind == "rto-abort" and p.side == ("server" if last_ack else "client")
    return p


@pytest.mark.parametrize(
    ("name", "when"), [("shutdown.pcap", SHUTDOWN_ETIMEDOUT), ("close.pcap", CLOSE_GONE)]
)
def test_both_ends_are_the_models(name: str, when: float) -> None:
    p = rto_of(name)
    ends = [p.predicted_s, *p.alternatives]
    took = when - p.start_time
    best = min(ends, key=lambda e: abs(took - e))
    assert -0.10 <= took / best - 1 <= 0.10 + 0.125, (took, ends)
    assert any(e.startswith("after its FIN the app may still hold the socket") for e in p.explanations)


def test_the_orphans_end_follows_tcp_orphan_retries() -> None:
    """0 means 8: the orphan's end is then tcp_model_timeout(8), later than tcp_retries2=5's."""
    two = rto_of("close.pcap")
    eight = rto_of("close.pcap", ["tcp_retries2=5"])
    assert min(two.alternatives) < two.predicted_s < max(eight.alternatives)
    assert any("tcp_orphan_retries=0 (kernel default) (0 means 8 while" in e for e in eight.explanations)


@pytest.mark.parametrize(
    ("name", "settings", "seen", "gone"),
    [
        (
            "fin_only_orphan_retries_1.pcap",
            ["tcp_orphan_retries=1", "tcp_retries2=5"],
            1796193292.7958,
            1796193292.9218,
        ),
        (
            "fin_only_orphan_retries_3.pcap",
            ["tcp_orphan_retries=3", "tcp_retries2=5"],
            1796193304.7526,
            1796193304.8826,
        ),
        (
            "fin_only_rto_max_1000.pcap",
            ["tcp_rto_max_ms=1000"],
            1796193439.671,
            1796193439.809,
        ),
        ("last_ack_orphan_retries_2.pcap", ["tcp_orphan_retries=2"], 1796193524.717, 1796193524.846),
        ("last_ack_orphan_retries_3.pcap", ["tcp_orphan_retries=3"], 1796193549.9201, 1796193550.0471),
        # The app's ETIMEDOUT (after shutdown(): tcp_retries2's end), seen within 10 ms.
        (
            "last_ack_shutdown.pcap",
            ["tcp_orphan_retries=1", "tcp_retries2=4"],
            1796193559.7861,
            1796193559.7961,
        ),
        (
            "close_rto_max_2000.pcap",
            ["tcp_rto_max_ms=2000"],
            1796193448.8724,
            1796193449.0194,
        ),
    ],
)
def test_the_orphan_goes_when_the_model_says(
    name: str, settings: list[str], seen: float, gone: float
) -> None:
    """The orphan's end (one of the model's ends) falls between its last sighting in ss and the
    first without it (the timer wheel may fire up to 1/8 late: the model's end may be earlier;
    and its RTO, read from the gaps, a little long)."""
    p = rto_of(name, settings)
    ends = [p.start_time + e for e in (p.predicted_s, *p.alternatives)]
    assert any(seen - 0.125 * (e - p.start_time) <= e <= gone + 0.02 * (e - p.start_time) for e in ends), (
        seen,
        gone,
        ends,
    )
    if "rto_max" in name:  # 8's budget would be far later than the orphan's end
        eight = p.start_time + rto_abort_after(8, rto_max=p_rto_max(settings))
        assert eight > gone + 2


def test_a_user_timeout_ends_both_alike() -> None:
    p = rto_of("shutdown.pcap", ["tcp_retries2=5", "tcp_orphan_retries=2"])
    q = rto_of("shutdown.pcap", ["tcp_retries2=5"])
    assert p.alternatives != q.alternatives
    u = parse_settings(["tcp_orphan_retries=2"], ["TCP_USER_TIMEOUT=3000"])
    analysis = analyze_file(RECORDED / "shutdown.pcap")
    (r,) = predict_connection(analysis.connections[0], lambda _: u, analysis.icmp_errors)
    assert (r.predicted_s, r.alternatives) == (3.0, [])


def p_rto_max(settings: list[str]) -> float:
    return parse_settings(settings, []).rto_max
