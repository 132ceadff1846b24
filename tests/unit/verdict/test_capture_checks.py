"""A capture that lost packets cannot pass: tcpdump's own count, from its log (text as the
trial run's tcpdump 4.99 printed it)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.capture.tcpdump import dropped_by_kernel
from orchestrator.verdict.capture_checks import capture_checks, tell_incomplete
from orchestrator.verdict.expectations import Check

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


def test_one_lost_packet_is_said_in_the_singular(tmp_path: Path) -> None:
    (tmp_path / "server.capture.log").write_text(LOST.replace("1374 packets dropped", "1 packet dropped"))
    (check,) = capture_checks(tmp_path, ["server"])
    assert check.observed.startswith("tcpdump dropped 1 packet (the kernel's ring was full)")


def _judged(tmp_path: Path, log: str) -> list[Check]:
    """A verdict's checks of every kind, the server's capture with `log`; told as judge does."""
    (tmp_path / "server.capture.log").write_text(log)
    checks = [
        Check("timeline[0]", True, "kill on server applied", "applied"),
        *capture_checks(tmp_path, ["server"]),
        Check("handshake", True, "complete", "complete", ["SYN client.pcap#1 +0.000s"]),
        Check("rst_from", True, "none", "none"),
        Check("zero_window.server", True, ">=1", "9"),
        Check("apps.client.sees", True, "ETIMEDOUT", "ETIMEDOUT"),
        Check("apps.client.at", True, "6.300s", "6.310s"),
        Check("apps.server.at", True, "5s", "5.010s"),
        Check("kernel_counters.client.TCPTimeouts", True, ">=1", "3"),
        Check("socket_at_end.server", True, "ESTAB", "ESTAB"),
        Check("sockets[0]", True, "ESTAB", "ESTAB"),
        Check("middlebox.nat.died", True, ">=1", "5"),
        Check("middlebox.nat.forgot", True, "true", "DESTROY at +10.922s"),
        Check("middlebox.nat.picked_up", True, "false", "no new entry"),
    ]
    tell_incomplete(checks, ["client"])  # client's time is the kernel model's; server's absolute
    return checks


def test_a_lost_packet_names_every_expectation_judged_from_packets(tmp_path: Path) -> None:
    checks = {c.name: c for c in _judged(tmp_path, LOST)}
    from_packets = ["handshake", "rst_from", "zero_window.server", "apps.client.at", "middlebox.nat.died"]
    assert checks["capture.server"].observed == (
        "tcpdump dropped 1374 packets (the kernel's ring was full): server's capture is incomplete; "
        "judged from packets, so possibly wrong: " + ", ".join(from_packets)
    )
    for name, check in checks.items():
        told = "judged from an incomplete capture (capture.server)" in check.evidence
        assert told == (name in from_packets), name
    assert checks["handshake"].evidence[0] == "SYN client.pcap#1 +0.000s"  # its own evidence first
    assert checks["handshake"].passed  # the expectation's own verdict is left as judged


def test_a_whole_capture_leaves_every_check_as_it_was(tmp_path: Path) -> None:
    checks = _judged(tmp_path, WHOLE)
    assert "capture.server" not in [c.name for c in checks]
    assert all("incomplete" not in " ".join(c.evidence) for c in checks)
