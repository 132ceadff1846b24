"""Every recorded capture's connections under many settings, odd ones included (a user timeout
of 1 ms, linear timeouts, a low RTO ceiling, no retries): the model says something for each,
and never raises. Two such crashes were found this way (a single timer send with linear
timeouts; a budget the fast retransmissions had spent)."""

from __future__ import annotations

import itertools
from pathlib import Path

from orchestrator.kernel.predict import capture_end, predict_connection
from orchestrator.kernel.settings import KernelSettings, parse_settings
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.contract import connection_json

ROOT = Path(__file__).resolve().parents[3]
SYSCTLS = [
    [],
    ["tcp_retries2=0"],
    ["tcp_retries2=3"],
    ["tcp_retries2=30"],
    ["tcp_rto_max_ms=1000", "tcp_retries2=3"],
    ["tcp_thin_linear_timeouts=1"],
    ["tcp_thin_linear_timeouts=1", "tcp_rto_max_ms=2000"],
    ["tcp_early_retrans=0"],
    ["tcp_orphan_retries=1"],
    ["tcp_orphan_retries=0", "tcp_rto_max_ms=1000"],
    ["tcp_mtu_probing=2", "tcp_retries1=1"],
    ["tcp_syn_retries=1", "tcp_syn_linear_timeouts=4", "tcp_synack_retries=1"],
    ["tcp_keepalive_time=1", "tcp_keepalive_intvl=1", "tcp_keepalive_probes=1"],
]
SOCKOPTS = [
    [],
    ["TCP_USER_TIMEOUT=1"],
    ["TCP_USER_TIMEOUT=3000"],
    ["TCP_KEEPIDLE=1", "TCP_KEEPCNT=1", "TCP_KEEPINTVL=1"],
    ["TCP_USER_TIMEOUT=3000", "TCP_THIN_LINEAR_TIMEOUTS=1"],
]


def test_no_setting_makes_the_model_fail_on_a_recorded_connection() -> None:
    captures = sorted(p for p in (ROOT / "tests").rglob("*") if p.suffix in (".pcap", ".pcapng"))
    assert len(captures) > 100
    settings: list[KernelSettings] = [parse_settings(a, b) for a, b in itertools.product(SYSCTLS, SOCKOPTS)]
    made = 0
    for path in captures:
        analysis = analyze_file(path)
        end = capture_end(analysis.connections)
        for c in analysis.connections:
            for s in settings:
                try:
                    found = predict_connection(c, lambda _side, s=s: s, analysis.icmp_errors, end)
                    connection_json(c, found)
                except Exception as exc:  # any failure is the finding
                    raise AssertionError(f"{path} #{c.stream} with {s}: {type(exc).__name__}: {exc}") from exc
                made += len(found)
    assert made > 5_000  # the model said something, many times over
