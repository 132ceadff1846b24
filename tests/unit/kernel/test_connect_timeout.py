"""Connects into a black hole, recorded in the netns harness on this machine's 6.18 kernel
(HZ=250, tcp_syn_linear_timeouts=4): `w` drops everything, the client's connect() fails with
ETIMEDOUT at the time kept here (its own clock, the pcap's).

TCP_USER_TIMEOUT set before connect() takes the place of tcp_model_timeout(tcp_syn_retries,
1 s) and clamps the SYN's timer to it: the connect fails at first SYN + user timeout, not at
the next expiry; one shorter than the first SYN timer still lets one retransmission out."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import UsageError
from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file

RECORDED = Path(__file__).parent / "recorded" / "user_timeout"
# file -> (--sysctl, --sockopt, the app's ETIMEDOUT, epoch s)
CONNECTS = {
    "connect_ut2500.pcap": ([], ["TCP_USER_TIMEOUT=2500"], 1796190539.4294782),
    "connect_ut500.pcap": ([], ["TCP_USER_TIMEOUT=500"], 1796190543.089691),
    "connect_syn_retries_1_ut60000.pcap": (
        ["tcp_syn_retries=1"],
        ["TCP_USER_TIMEOUT=60000"],
        1796190851.4617908,
    ),
    "connect_syn_retries_2.pcap": (["tcp_syn_retries=2"], [], 1796190580.0694647),
}


def connect_of(name: str, sysctls: list[str], sockopts: list[str], end: float) -> KernelPrediction:
    analysis = analyze_file(RECORDED / name)
    (conn,) = analysis.connections
    s = parse_settings(sysctls, sockopts)
    (p,) = predict_connection(conn, lambda _: s, analysis.icmp_errors, end)
    assert p.kind == "connect-timeout"
    return p


@pytest.mark.parametrize("name", sorted(CONNECTS))
def test_the_connect_ends_where_the_kernel_ended_it(name: str) -> None:
    sysctls, sockopts, etimedout = CONNECTS[name]
    p = connect_of(name, sysctls, sockopts, etimedout + 0.3)
    took = etimedout - p.start_time
    assert -0.10 <= took / p.predicted_s - 1 <= 0.10 + 0.125
    assert p.within_tolerance is True
    if name in CLAMPED:  # the clamp, which sends nothing, ended it: the packets bound the end
        assert p.observed_s is None and p.observed_window is not None
        assert p.observed_window[0] < took <= p.observed_window[1]
        assert "cannot show" in p.observed
    else:
        assert p.observed_s is not None and abs(p.observed_s - took) < 0.1


CLAMPED = ("connect_ut2500.pcap", "connect_ut500.pcap")  # a user timeout before the next expiry


def test_a_user_timeout_the_syns_belie_is_not_confirmed() -> None:
    """Told 1.5 s where the capture has SYNs at 1 and 2 s: the model's one retransmission is
    contradicted by the count, and no bounds are made of its own end."""
    _, _, etimedout = CONNECTS["connect_ut2500.pcap"]
    p = connect_of("connect_ut2500.pcap", [], ["TCP_USER_TIMEOUT=1500"], etimedout + 0.3)
    assert p.observed_window is None and p.within_tolerance is not True
    assert any("2 SYN retransmissions were captured, the model gives 1" in e for e in p.explanations)


def test_the_user_timeout_clamps_the_syn_timer() -> None:
    """2.5 s: SYNs at 0, 1, 2 and ETIMEDOUT at 2.535 s, not at the 3 s expiry."""
    _, sockopts, etimedout = CONNECTS["connect_ut2500.pcap"]
    p = connect_of("connect_ut2500.pcap", [], sockopts, etimedout + 0.3)
    assert p.predicted_s == pytest.approx(2.5)
    assert "2 SYN retransmissions" in p.basis
    assert "in tcp_model_timeout(6, 1 s)'s place" in p.basis


def test_a_user_timeout_under_the_first_syn_timer_still_lets_one_retransmission_out() -> None:
    _, sockopts, etimedout = CONNECTS["connect_ut500.pcap"]
    p = connect_of("connect_ut500.pcap", [], sockopts, etimedout + 0.3)
    assert "1 SYN retransmissions" in p.basis
    assert not p.explanations  # the count agrees with the capture's


def test_a_user_timeout_longer_than_the_syn_budget_lengthens_the_connect() -> None:
    """tcp_syn_retries=1 alone ends at 3 s; with a 60 s user timeout the count (1 + 4 linear)
    ends it: five retransmissions, ETIMEDOUT at 7.13 s."""
    sysctls, sockopts, etimedout = CONNECTS["connect_syn_retries_1_ut60000.pcap"]
    p = connect_of("connect_syn_retries_1_ut60000.pcap", sysctls, sockopts, etimedout + 0.3)
    assert p.predicted_s == pytest.approx(7.0)
    alone = connect_of("connect_syn_retries_1_ut60000.pcap", sysctls, [], etimedout + 0.3)
    assert alone.predicted_s == pytest.approx(3.0)


def test_more_syns_than_the_model_allows_contradict_it() -> None:
    """tcp_syn_retries=2 on the wire (five retransmissions, ETIMEDOUT 7.14 s), analysed as 1
    (two, 3 s): the inferred end comes after the last SYN the capture shows, not at the
    model's own 3 s, so the wrong setting is not confirmed; and the count says why."""
    _, _, etimedout = CONNECTS["connect_syn_retries_2.pcap"]
    p = connect_of("connect_syn_retries_2.pcap", ["tcp_syn_retries=1"], [], etimedout + 0.3)
    assert p.predicted_s == pytest.approx(3.0)
    assert p.observed_s is not None and abs(p.observed_s - (etimedout - p.start_time)) < 0.1
    assert p.within_tolerance is False
    assert any("5 SYN retransmissions were captured, the model gives 2" in e for e in p.explanations)
    # The capture alone (it ends at the last SYN): no end seen, and still the contradiction.
    seen = connect_of("connect_syn_retries_2.pcap", ["tcp_syn_retries=1"], [], p.start_time + 5.2)
    assert seen.observed_s is None
    assert any("5 SYN retransmissions were captured" in e for e in seen.explanations)


@pytest.mark.parametrize(
    "given", [(["tcp_syn_retries=0"], []), ([], ["TCP_SYNCNT=0"]), ([], ["TCP_SYNCNT=128"])]
)
def test_syn_retries_the_kernel_refuses_are_refused(given: tuple[list[str], list[str]]) -> None:
    with pytest.raises(UsageError, match="the kernel takes 1 to 127"):
        parse_settings(*given)
