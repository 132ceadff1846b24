"""Linear timeouts for thin streams (tcp_thin_linear_timeouts, TCP_THIN_LINEAR_TIMEOUTS): with
fewer than 4 segments in flight, in ESTABLISHED, Linux keeps the RTO level while
icsk_retransmits <= TCP_THIN_LINEAR_RETRIES (6), then doubles (`tcp_retransmit_timer`); the
budget is still tcp_model_timeout's in 200 ms units."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import UsageError
from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import KernelSettings, parse_settings
from orchestrator.kernel.timers import TCP_THIN_LINEAR_RETRIES, rto_abort_from_stamp, timer_gap
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.connection import FrameRef
from tests.helpers.pcaps import Conv


def test_six_level_gaps_then_doubling() -> None:
    gaps = [timer_gap(k, 0.2, linear=TCP_THIN_LINEAR_RETRIES) for k in range(1, 11)]
    assert gaps == pytest.approx([0.2] * 6 + [0.4, 0.8, 1.6, 3.2])
    assert [timer_gap(k, 0.4) for k in range(1, 5)] == pytest.approx([0.4, 0.8, 1.6, 3.2])
    assert timer_gap(12, 0.2, rto_max=1.0, linear=6) == 1.0


def test_the_abort_is_the_first_linear_or_doubled_fire_past_the_budget() -> None:
    # tcp_retries2=5: 12.6 s. Fires from the stamp 0.2 ... 1.2, then 1.6, 2.4, 4.0, 7.2, 13.6.
    assert rto_abort_from_stamp(12.6, 0.2, linear=6) == pytest.approx(13.6)
    assert rto_abort_from_stamp(12.6, 0.2) == pytest.approx(12.6)  # doubling from 0.2
    assert rto_abort_from_stamp(3.0, 0.2, linear=6) == pytest.approx(4.0)  # ... 1.6, 2.4, then 4.0
    assert rto_abort_from_stamp(12.6, 0.4, linear=1) == rto_abort_from_stamp(12.6, 0.4)


def test_the_settings_take_the_sysctl_and_the_socket_option() -> None:
    assert parse_settings(["tcp_thin_linear_timeouts=1"], []).thin_linear == 1
    s = parse_settings([], ["TCP_THIN_LINEAR_TIMEOUTS=1"])
    assert s.thin_linear == 1 and s.label("thin_linear") == "TCP_THIN_LINEAR_TIMEOUTS=1"
    assert KernelSettings().label("thin_linear") == "tcp_thin_linear_timeouts=0 (kernel default)"
    # The kernel ORs the socket's flag with the namespace's: 0 on the socket leaves it on.
    both = parse_settings(["tcp_thin_linear_timeouts=1"], ["TCP_THIN_LINEAR_TIMEOUTS=0"])
    assert both.thin_linear == 1
    with pytest.raises(UsageError, match="0 to 1"):
        parse_settings([], ["TCP_THIN_LINEAR_TIMEOUTS=2"])  # measured: EINVAL


# Recorded in the netns harness on this machine's 6.18 kernel (HZ=250): a client writing 100
# bytes every 200 ms, a cut in w 1.1 s after connecting, the client's ETIMEDOUT logged. The
# namespace's default congestion control is BBR here; the client set CUBIC on its socket
# (TCP_CONGESTION) for the three "cubic" captures.
RECORDED = Path(__file__).parent / "recorded" / "thin_linear"
# file -> (the settings given, the client's ETIMEDOUT, epoch s)
LINEAR = {
    # tcp_thin_linear_timeouts=1: a tail-loss probe, then 6 gaps of 0.208 s, then 0.436, 0.828,
    # 1.664, 3.328; ETIMEDOUT 14.165 s after the first retransmission (doubling from 0.208: 13.1)
    "cubic_sysctl_retries2_5.pcap": (
        ["tcp_retries2=5", "tcp_thin_linear_timeouts=1"],
        [],
        1796280491.7705393,
    ),
    # TCP_THIN_LINEAR_TIMEOUTS=1 on the socket, tcp_retries2=3: ETIMEDOUT 4.164 s after it (not 3.12)
    "cubic_sockopt_retries2_3.pcap": (["tcp_retries2=3"], ["TCP_THIN_LINEAR_TIMEOUTS=1"], 1796280507.5741265),
    # as the sysctl one with tcp_early_retrans=0 (no tail-loss probe) and tcp_retries2=3
    "cubic_no_tlp_retries2_3.pcap": (
        ["tcp_retries2=3", "tcp_thin_linear_timeouts=1"],
        [],
        1796280514.3580608,
    ),
}
# tcp_thin_linear_timeouts=1 under BBR: doubling (0.44, 0.83, 1.66 s) with one segment in flight,
# BBR keeps no slow-start threshold, so tcp_stream_is_thin() is never true; ETIMEDOUT 6.43 s after
BBR = ("bbr_sysctl_retries2_3.pcap", 1796280458.4918654)


def rto_of(name: str, s: KernelSettings, end: float) -> KernelPrediction:
    analysis = analyze_file(RECORDED / name)
    (conn,) = analysis.connections
    (p,) = [
        p for p in predict_connection(conn, lambda _: s, analysis.icmp_errors, end) if p.kind == "rto-abort"
    ]
    return p


def linear_note(p: KernelPrediction) -> list[str]:
    return [e for e in p.explanations if e.startswith("linear timeouts")]


@pytest.mark.parametrize("name", sorted(LINEAR))
@pytest.mark.parametrize("given", [True, False])
def test_level_gaps_give_the_kernels_end(name: str, given: bool) -> None:
    """Given or not, the model follows the level gaps: the kernel's end within 2 %, and the
    capture's inferred end too (before: the first gap doubled nine times, 'still retransmitting',
    its next expiry 55 to 127 s away)."""
    sysctls, sockopts, etimedout = LINEAR[name]
    if not given:
        sysctls, sockopts = [x for x in sysctls if "thin" not in x], []
    p = rto_of(name, parse_settings(sysctls, sockopts), etimedout + 5)
    took = etimedout - p.start_time
    assert abs(took / p.predicted_s - 1) <= 0.02
    assert p.observed_s is not None and abs(p.observed_s - took) <= 0.05
    assert p.within_tolerance is True
    assert "level for" in p.basis


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_without_the_setting_the_note_names_it(name: str) -> None:
    sysctls, _, etimedout = LINEAR[name]
    bare = parse_settings([x for x in sysctls if "thin" not in x], [])
    (note,) = linear_note(rto_of(name, bare, etimedout + 5))
    assert "tcp_thin_linear_timeouts=1" in note and "then doubled" in note
    given = parse_settings(*LINEAR[name][:2])
    assert not linear_note(rto_of(name, given, etimedout + 5))


def test_the_setting_under_bbr_does_not_make_the_gaps_level() -> None:
    name, etimedout = BBR
    p = rto_of(name, parse_settings(["tcp_retries2=3", "tcp_thin_linear_timeouts=1"], []), etimedout + 5)
    assert "level for" not in p.basis
    assert p.within_tolerance is True
    (note,) = linear_note(p)
    assert note.startswith("linear timeouts not in effect") and "BBR" in note
    bare = rto_of(name, parse_settings(["tcp_retries2=3"], []), etimedout + 5)
    assert not linear_note(bare) and bare.predicted_s == p.predicted_s


@pytest.mark.parametrize(
    "path", ["rto_max/rto_max_1000_retries2_6.pcap", "icmp_revert/rto_min_1000_retries2_6.pcap"]
)
def test_a_plain_backoff_and_an_icmp_held_one_are_not_linear(path: str) -> None:
    """Doubling gaps up to a ceiling, and gaps ICMP errors held level (RFC 6069): not linear."""
    analysis = analyze_file(Path(__file__).parent / "recorded" / path)
    (conn,) = analysis.connections
    assert conn.last_frame is not None
    s = parse_settings(["tcp_retries2=6"], [])
    found = predict_connection(conn, lambda _: s, analysis.icmp_errors, conn.last_frame.time + 30)
    assert found
    assert not any(e.startswith("linear timeouts") for p in found for e in p.explanations)
    assert not any("level for" in p.basis for p in found)


# tcp_rto_max_ms=1000 in a's namespace and a 600 ms RTT (relay.py, 300 ms each way), BBR: the
# RTO is at the ceiling from the first, every gap 1.024 s; ETIMEDOUT 4.096 s after the first
# retransmission with tcp_retries2=4 (budget 3.4 s with the ceiling).
CEILING = ("ceiling_1000_rtt_600ms_retries2_4.pcap", 1796281101.494044)


def test_a_level_at_the_given_ceiling_is_not_linear() -> None:
    name, etimedout = CEILING
    p = rto_of(name, parse_settings(["tcp_retries2=4", "tcp_rto_max_ms=1000"], []), etimedout + 5)
    assert p.within_tolerance is True
    assert "level for" not in p.basis
    assert not linear_note(p) and not any("cannot tell" in e for e in p.explanations)


def test_a_level_of_a_second_without_a_setting_is_not_called_linear() -> None:
    """A level of 1 s or more from the first gap is a lowered ceiling or linear timeouts: the
    packets cannot tell, and the note names both settings instead of claiming one."""
    name, etimedout = CEILING
    p = rto_of(name, parse_settings(["tcp_retries2=4"], []), etimedout + 5)
    assert "level for" not in p.basis and not linear_note(p)
    (note,) = [e for e in p.explanations if "cannot tell" in e]
    assert "tcp_rto_max_ms=1000" in note and "tcp_thin_linear_timeouts=1" in note


# Recorded 2026-12-03 in two network namespaces on 6.18 (veth, the cut an nft drop in the
# server's input), the same client as above (CUBIC, 100 bytes every 200 ms), tcp_retries2=3 and
# tcp_thin_linear_timeouts=1 in the client's namespace; nstat there after the ETIMEDOUT.
# tcp_early_retrans=0: TcpExtTCPLossProbes 0, TcpRetransSegs 9, TcpExtTCPTimeouts 10: the first
# retransmission, 0.211 s after the original, is the timer's; ETIMEDOUT 4.193 s after it.
# tcp_early_retrans=3 (the default): TCPLossProbes 1, the probe carrying the write Nagle held.
NO_PROBES = {
    "cubic_early_retrans_0_retries2_3.pcap": 1796311186.421233,
    "cubic_no_tlp_retries2_3.pcap": LINEAR["cubic_no_tlp_retries2_3.pcap"][2],
}
PROBES = ("cubic_early_retrans_3_retries2_3.pcap", 1796311193.99805)
THIN_3 = ["tcp_retries2=3", "tcp_thin_linear_timeouts=1"]


def first_retransmission(name: str) -> FrameRef:
    (conn,) = analyze_file(RECORDED / name).connections
    return conn.head_frames[1]


@pytest.mark.parametrize("name", sorted(NO_PROBES))
def test_without_probes_the_first_retransmission_is_the_timers(name: str) -> None:
    """Level gaps from the first re-send; with tcp_early_retrans=0 there are no probes: the
    budget counts from the first, and the model's end is the kernel's (the app sees it at its
    next write, up to 200 ms later)."""
    etimedout = NO_PROBES[name]
    p = rto_of(name, parse_settings([*THIN_3, "tcp_early_retrans=0"], []), etimedout + 5)
    assert p.start_frame == first_retransmission(name)
    assert not any("was a tail-loss probe" in e for e in p.explanations)
    assert 0 <= etimedout - p.at <= 0.2 + 0.05
    # Without the setting the count of level gaps tells it: 6 after the first re-send, then
    # doubling, as the kernel keeps after its stamp (a probe first would add one).
    counted = rto_of(name, parse_settings(THIN_3, []), etimedout + 5)
    assert counted.start_frame == p.start_frame
    assert not any("tail-loss probe" in e for e in counted.explanations)


@pytest.mark.parametrize("early_retrans", [3, 4, 2])
def test_the_setting_does_not_call_a_timer_retransmission_a_probe(early_retrans: int) -> None:
    """With probes on (3, 4) the capture whose probe carried new data still reads its first
    re-send of the head as the timer's; with 2 (early retransmit only) too."""
    name, etimedout = PROBES
    p = rto_of(name, parse_settings([*THIN_3, f"tcp_early_retrans={early_retrans}"], []), etimedout + 5)
    assert p.start_frame == first_retransmission(name)
    assert not any("tail-loss probe:" in e or "was a tail-loss probe" in e for e in p.explanations)
    # The last expiry may fire up to 1/8 of its 1.66 s gap late, and the app sees it at its next write.
    assert 0 <= etimedout - p.at <= 0.2 + 1.66 / 8


def test_early_retrans_is_a_setting() -> None:
    s = parse_settings(["net.ipv4.tcp_early_retrans=0"], [])
    assert s.early_retrans == 0 and not s.tail_loss_probes
    assert s.label("early_retrans") == "tcp_early_retrans=0"
    assert KernelSettings().tail_loss_probes and parse_settings(["tcp_early_retrans=4"], []).tail_loss_probes
    assert KernelSettings().label("early_retrans") == "tcp_early_retrans=3 (kernel default)"
    with pytest.raises(UsageError, match="0 to 4"):
        parse_settings(["tcp_early_retrans=5"], [])


# The same namespaces and settings, the client writing 500 bytes in 5 writes, then one write
# after the cut and nothing more (so a probe can only re-send it). tcp_early_retrans=3:
# TCPLossProbes 1, TcpRetransSegs 10, the probe 0.210 s after the original, then 7 level gaps
# and doubling; ETIMEDOUT 4.176 s after the timer's first retransmission (the send after the
# probe). tcp_early_retrans=0: no probe, TcpRetransSegs 9, 6 level gaps after the first re-send
# (0.210 s after the original); ETIMEDOUT 4.188 s after it.
ONE_WRITE = {
    "one_write_early_retrans_3_retries2_3.pcap": (True, 1796312463.4039476),
    "one_write_early_retrans_0_retries2_3.pcap": (False, 1796312470.8640707),
}


@pytest.mark.parametrize("name", sorted(ONE_WRITE))
def test_the_count_of_level_gaps_tells_a_probe_from_the_timer(name: str) -> None:
    """Both re-send the head 0.210 s after the original, then level gaps: alike to the first
    gaps' test; the number of level gaps before the doubling tells them apart."""
    probe, etimedout = ONE_WRITE[name]
    p = rto_of(name, parse_settings(THIN_3, []), etimedout + 5)
    (conn,) = analyze_file(RECORDED / name).connections
    assert p.start_frame == conn.head_frames[2 if probe else 1]
    assert any("was a tail-loss probe" in e for e in p.explanations) is probe
    assert 0 <= etimedout - p.at <= 0.1  # the app blocked in recv is told at once


def test_where_the_gaps_cannot_tell_the_setting_does(tmp_path: Path) -> None:
    """Level re-sends to the capture's end (no turn shown): the first gaps' test reads a probe
    first; with tcp_early_retrans=0 there is none, and the budget counts from the first."""
    c = Conv(client=("10.0.0.2", 40000), server=("10.0.0.1", 7000))
    c.handshake()
    sent = c.data("c", 100)
    for _ in range(4):
        c.retransmit("c", sent, dt=0.208)
    analysis = analyze_file(c.write(tmp_path / "level.pcap"))
    (conn,) = analysis.connections
    end = conn.head_frames[-1].time + 5

    def rto(s: KernelSettings) -> KernelPrediction:
        found = predict_connection(conn, lambda _: s, analysis.icmp_errors, end)
        (p,) = [p for p in found if p.kind == "rto-abort"]
        return p

    guessed = rto(parse_settings(THIN_3, []))
    assert guessed.start_frame == conn.head_frames[2]
    assert any("was a tail-loss probe" in e for e in guessed.explanations)
    given = rto(parse_settings([*THIN_3, "tcp_early_retrans=0"], []))
    assert given.start_frame == conn.head_frames[1]
    (why,) = [e for e in given.explanations if "not a tail-loss probe: tcp_early_retrans=0" in e]
    assert "linear timeouts" in why


def test_with_the_setting_a_single_timer_send_is_counted_linear() -> None:
    # One retransmission captured (a FIN's, the capture ending there): no gap to read the level
    # from, so the setting alone says linear. It raised IndexError on the missing second send.
    capture = Path(__file__).resolve().parents[1] / "tcp" / "recorded" / "one_way" / "client_only.pcap"
    analysis = analyze_file(capture)
    (conn,) = [c for c in analysis.connections if c.close == "fin-unanswered"]
    assert len(conn.head_frames) == 2  # the original and one retransmission: a single timer send
    given = parse_settings(["net.ipv4.tcp_thin_linear_timeouts=1"], [])
    (p,) = predict_connection(conn, lambda _side: given, [], conn.last_frame.time if conn.last_frame else 0.0)
    assert p.kind == "rto-abort" and "level for 6 gaps" in p.basis
    (q,) = predict_connection(conn, lambda _side: KernelSettings(), [], p.start_time)
    assert "level for" not in q.basis and q.predicted_s != p.predicted_s
