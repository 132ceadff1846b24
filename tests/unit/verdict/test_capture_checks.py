"""A capture that lost packets cannot pass: tcpdump's own count, from its log (text as the
trial run's tcpdump 4.99 printed it)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.capture.tcpdump import dropped_by_kernel
from orchestrator.verdict.capture_checks import capture_checks

LOST = """tcpdump: data link type LINUX_SLL2
tcpdump: listening on any, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 262144 bytes
5583 packets captured
6957 packets received by filter
1374 packets dropped by kernel
"""
WHOLE = LOST.replace("1374 packets dropped", "0 packets dropped")


def test_a_host_whose_tcpdump_dropped_packets_fails_and_says_how_many(tmp_path: Path) -> None:
    (tmp_path / "client.capture.log").write_text(LOST)
    (tmp_path / "server.capture.log").write_text(WHOLE)
    checks = capture_checks(tmp_path, ["client", "server", "nat"])  # nat: no log at all
    assert [(c.name, c.passed) for c in checks] == [("capture.client", False)]
    assert "tcpdump dropped 1374 packets" in checks[0].observed


def test_a_routers_captures_are_summed_and_a_whole_capture_says_nothing() -> None:
    router = LOST + "tcpdump: listening on eth1\n1 packet dropped by kernel\n"
    assert dropped_by_kernel(router) == 1375
    assert dropped_by_kernel(WHOLE) == 0 and dropped_by_kernel("") == 0
