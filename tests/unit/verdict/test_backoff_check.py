"""The `backoff: doubling` check on gap series: where it must pass and where it must not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.scenario.loader import parse_scenario
from orchestrator.scenario.yamlpos import load_located
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import Side
from orchestrator.verdict.expectations import Check, check_backoff
from orchestrator.verdict.judge import _check_all
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


THIN = "tcp_thin_linear_timeouts=1"
# A thin stream's linear timeouts on 6.18 (tests/unit/kernel/recorded/thin_linear): a tail-loss
# probe, 6 level gaps, then doubling from the level.
LINEAR = [0.413, 0.208, 0.208, 0.208, 0.208, 0.208, 0.208, 0.436, 0.828, 1.664, 3.328]


def linear_checked(gaps: list[float], thin_linear: str | None) -> Check:
    conn = dataclasses.replace(bare("10.0.0.2:40000", "10.0.0.1:7000"), backoff_gaps_s=gaps)
    return check_backoff(conn, TOL, [], None, thin_linear=thin_linear)


@pytest.mark.parametrize(
    "gaps",
    [
        LINEAR,
        [0.205, 0.212, 0.208, 0.208, 0.208, 0.208, 0.208, 0.420, 0.832],  # no tail-loss probe
        [0.41, 0.208, 0.212, 0.208],  # the run ends while still level
    ],
)
def test_linear_timeouts_pass_with_the_setting_and_fail_named_without(gaps: list[float]) -> None:
    given = linear_checked(gaps, THIN)
    assert given.passed and THIN in given.expected
    assert any("linear timeouts (tcp_thin_linear_timeouts=1), the kernel's" in e for e in given.evidence)
    bare_check = linear_checked(gaps, None)
    assert not bare_check.passed
    (why,) = [e for e in bare_check.evidence if "linear timeouts" in e]
    assert "do not turn on" in why and "tcp_thin_linear_timeouts=1" in why


@pytest.mark.parametrize(
    "gaps",
    [
        [0.41, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.4],  # 7 level gaps: more than the kernel keeps
        [0.41, 0.2, 0.2, 0.2, 0.6],  # level, then tripled
        [0.41, 0.2, 0.2, 0.4, 0.4],  # level, doubled once, then level again
        [0.2, 0.4, 0.8, 0.8],  # doubling, then one flat step: not linear from the first
        [0.2, 0.4, 1.2],  # tripling
    ],
)
def test_gaps_that_neither_double_nor_fit_linear_timeouts_fail_with_the_setting(gaps: list[float]) -> None:
    check = linear_checked(gaps, THIN)
    assert not check.passed
    assert not any("linear timeouts" in e for e in check.evidence)


def test_doubling_passes_with_the_setting_too() -> None:
    """tcp_thin_linear_timeouts=1 where Linux does not take the stream as thin (BBR, measured)."""
    check = linear_checked([0.414, 0.440, 0.832, 1.664], THIN)
    assert check.passed and not any("linear timeouts" in e for e in check.evidence)


RECORDED = Path(__file__).parents[1] / "kernel" / "recorded"


@pytest.mark.parametrize(
    "name", ["cubic_sysctl_retries2_5.pcap", "cubic_sockopt_retries2_3.pcap", "cubic_no_tlp_retries2_3.pcap"]
)
def test_recorded_linear_timeouts(name: str) -> None:
    (conn,) = analyze_file(RECORDED / "thin_linear" / name).connections
    assert check_backoff(conn, TOL, [], None, thin_linear=THIN).passed
    check = check_backoff(conn, TOL, [], None)
    assert not check.passed and any("do not turn on" in e for e in check.evidence)


def test_a_recorded_syn_level_is_not_called_thin() -> None:
    """SYNs 1 s apart (tcp_syn_linear_timeouts): the words name the SYN's linear timeouts."""
    path = RECORDED / "user_timeout" / "connect_syn_retries_2.pcap"
    (conn,) = analyze_file(path).connections
    check = check_backoff(conn, TOL, [], None, thin_linear=THIN)
    assert not check.passed
    assert any("tcp_syn_linear_timeouts" in e and "not a thin stream" in e for e in check.evidence)


JUDGED = """\
name: thin
duration: 20s
hosts:
  server: {{role: server, address: 10.77.0.10, agent: {{mode: echo, port: 80}}}}
  client:
    role: client
    address: 10.77.0.20
    sysctls: {{{sysctls}}}
    agent: {{mode: send, connect: "server:80", every: 200ms}}
expect:
  backoff: doubling
"""


@pytest.mark.parametrize("thin", [True, False])
def test_the_judge_gives_the_check_the_senders_setting(thin: bool) -> None:
    sysctls = "net.ipv4.tcp_retries2: 5" + (", net.ipv4.tcp_thin_linear_timeouts: 1" if thin else "")
    sc = parse_scenario(load_located(JUDGED.format(sysctls=sysctls)), "thin.yaml")
    (conn,) = analyze_file(RECORDED / "thin_linear" / "cubic_sysctl_retries2_5.pcap").connections
    sides: dict[Side, str] = {"client": "client", "server": "server"}
    (check,) = [k for k in _check_all(sc, conn, {}, {}, sides, None) if k.name == "backoff"]
    assert check.passed is thin
