"""The kernel model's predictions next to crafted captures shaped like the real kernel's
(docs/kernel-facts.md: RTO about 208 ms, a tail-loss probe carrying Nagle's new data at
+0.205 s, the timer's first retransmission at +0.413 s, timers up to 1/8 late), and the
causes named when they differ."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, IPerror, TCPerror
from scapy.layers.inet6 import ICMPv6DestUnreach, IPerror6, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

from orchestrator.errors import UsageError
from orchestrator.kernel.predict import (
    KernelPrediction,
    predict_connection,
    prediction_from_json,
    prediction_json,
)
from orchestrator.kernel.settings import KernelSettings, parse_settings
from orchestrator.tcp.analysis import analyze_file
from tests.helpers.pcaps import Conv, scapy_packet

CLIENT, SERVER, ROUTER = ("10.77.0.20", 40000), ("10.77.0.10", 7000), "10.77.0.1"
# The timer's retransmissions of a cut, after its first (r1): r1 + these (measured, retries2_3).
TIMER = (0.42, 1.252, 2.916)


def cut_while_sending(timer: tuple[float, ...] = TIMER, tlp_new_data: bool = True) -> tuple[Conv, int, int]:
    """Data sent, then a cut: (if `tlp_new_data`) a probe carrying new data at +0.205 s, the
    timer's first retransmission r1 at +0.413 s, then r1 + `timer`. Returns the conversation,
    the head's frame and r1's frame."""
    c = Conv(client=CLIENT, server=SERVER)
    c.handshake()
    c.data("c", 100)
    c.ack("s", dt=0.001)
    head = c.data("c", 100, dt=0.2)
    start = c.t
    if tlp_new_data:
        c.data("c", 100, dt=0.205)
    r1 = c.retransmit("c", head, dt=start + 0.413 - c.t)
    for at in timer:
        c.retransmit("c", head, dt=start + 0.413 + at - c.t)
    return c, head, r1


def predictions(path: Path, settings: KernelSettings, end: float | None = None) -> list[KernelPrediction]:
    analysis = analyze_file(path)
    (conn,) = analysis.connections
    return predict_connection(conn, lambda side: settings, analysis.icmp_errors, end)


def settings(*sysctls: str, sockopts: tuple[str, ...] = ()) -> KernelSettings:
    return parse_settings(list(sysctls), list(sockopts))


def seg_time(c: Conv, frame: int) -> float:
    return c.segs[frame - 1].t


def test_the_budget_counts_from_the_timers_first_retransmission(tmp_path: Path) -> None:
    # tcp_retries2=3 (3 s): r1 + 0.42, 1.25, 2.92 are inside it; the next expiry, one doubled
    # RTO later (+6.24), is past it: the abort (measured: r1 + 6.22 to 6.27).
    c, _, r1 = cut_while_sending()
    (p,) = predictions(c.write(tmp_path / "cut.pcap"), settings("tcp_retries2=3"), seg_time(c, r1) + 8)
    assert (p.kind, p.side) == ("rto-abort", "client")
    assert p.start_frame is not None and p.start_frame.frame == r1
    assert p.start_time == pytest.approx(seg_time(c, r1))
    assert p.predicted_s == pytest.approx(6.24, abs=0.05)
    assert p.observed_s == pytest.approx(2.916 + 2 * 1.664, abs=1e-3)  # the next expiry
    assert p.within_tolerance is True and p.app_error == "ETIMEDOUT"
    assert "from the first retransmission" in p.basis
    assert any("new data went out between the original send and it" in e for e in p.explanations)
    # The verdict's "+X s" count from the run's start: the model's times say what they count from.
    last = seg_time(c, r1 + 3) - seg_time(c, r1)
    assert f"nothing after the retransmission {last:.3f} s after the first one" in p.observed
    assert "+" not in p.observed


def test_the_old_rule_from_the_original_send_would_be_wrong(tmp_path: Path) -> None:
    # Counting 3 s from the original would end it at the expiry after r1 + 2.92 - 0.413: the
    # same expiry; but for TCP_USER_TIMEOUT the start decides it to the millisecond.
    c, head, r1 = cut_while_sending()
    end = seg_time(c, r1) + 4
    (p,) = predictions(c.write(tmp_path / "cut.pcap"), settings(sockopts=("TCP_USER_TIMEOUT=3000",)), end)
    assert p.predicted_s == 3.0 and p.start_time == pytest.approx(seg_time(c, r1))
    assert p.at - seg_time(c, head) == pytest.approx(3.413, abs=1e-3)  # measured: 3.42 after the original
    # The clamped timer fires at the user timeout and sends nothing: the packets bound the end
    # (after the last retransmission, before the expiry that would have sent another).
    assert p.observed_s is None and p.observed_window is not None
    assert p.observed_window[0] < 3.0 <= p.observed_window[1]
    assert p.within_tolerance is True and "TCP_USER_TIMEOUT=3s" in p.basis


def test_a_tail_loss_probe_of_the_only_segment_sets_no_stamp(tmp_path: Path) -> None:
    # One segment in flight: the probe re-sends it at +0.205 (Wireshark: a retransmission),
    # the timer at +0.413; with TCP_USER_TIMEOUT=2000 the abort is r1 + 2.0 (measured 2.008).
    c = Conv(client=CLIENT, server=SERVER)
    c.handshake()
    head = c.data("c", 100, dt=0.2)
    start = c.t
    probe = c.retransmit("c", head, dt=0.205)
    r1 = c.retransmit("c", head, dt=start + 0.413 - c.t)
    for at in (0.416, 1.248):
        c.retransmit("c", head, dt=start + 0.413 + at - c.t)
    (p,) = predictions(c.write(tmp_path / "tlp.pcap"), settings(sockopts=("TCP_USER_TIMEOUT=2000",)))
    assert p.start_frame is not None and p.start_frame.frame == r1 != probe
    assert p.predicted_s == 2.0
    assert any(e.startswith("the first retransmission") and "tail-loss probe" in e for e in p.explanations)


def test_new_data_before_the_first_retransmission_means_no_probe_of_the_head(tmp_path: Path) -> None:
    # The same gaps as a probe of the head (0.413 then 0.42 is not doubling), but new data went
    # out first: the first re-send of the head is the timer's.
    c, _, r1 = cut_while_sending()
    (p,) = predictions(c.write(tmp_path / "cut.pcap"), settings(sockopts=("TCP_USER_TIMEOUT=2000",)))
    assert p.start_frame is not None and p.start_frame.frame == r1
    assert not any("was a tail-loss probe" in e for e in p.explanations)


def test_a_knife_edge_expiry_gives_both_ends(tmp_path: Path) -> None:
    # tcp_retries2=4 (6.2 s): with an RTO of 0.412 s the expiry at r1 + 6.18 is 20 ms short of
    # the budget; the timer wheel fired it at r1 + 6.27 here, and the kernel gave up there.
    c, _, r1 = cut_while_sending((0.412, 1.236, 2.884))
    (p,) = predictions(c.write(tmp_path / "edge.pcap"), settings("tcp_retries2=4"), seg_time(c, r1) + 7)
    assert p.predicted_s == pytest.approx(12.772, abs=0.01)
    assert p.alternatives == [pytest.approx(6.18, abs=0.01)]
    assert p.observed_s == pytest.approx(2.884 + 2 * 1.648, abs=1e-3)
    assert p.within_tolerance is True  # against the alternative
    assert any(e.startswith("knife edge") for e in p.explanations)


def test_the_default_budget_names_the_settings_that_fit(tmp_path: Path) -> None:
    c, _, r1 = cut_while_sending()
    (p,) = predictions(c.write(tmp_path / "cut.pcap"), KernelSettings(), seg_time(c, r1) + 8)
    assert p.predicted_s > 924.6 and "kernel default" in p.basis
    assert p.within_tolerance is False
    assert any("tcp_retries2=3 (3 s)" in e and "fits what the capture shows" in e for e in p.explanations)


def test_still_retransmitting_when_the_capture_ended(tmp_path: Path) -> None:
    c, _, r1 = cut_while_sending((0.42, 1.252))
    (p,) = predictions(c.write(tmp_path / "cut.pcap"), KernelSettings(), seg_time(c, r1) + 2.0)
    assert p.observed_s is None and p.within_tolerance is None
    assert p.observed.startswith("still retransmitting when the capture ended")
    assert "beyond it" in p.observed and p.beyond_capture


def icmp_unreachable(t: float, seq: int, v6: bool = False) -> Packet:
    if v6:
        pkt: Packet = (
            Ether()
            / IPv6(src="2001:db8::1", dst="2001:db8::a:4d:0:14")
            / ICMPv6DestUnreach(code=3)
            / IPerror6(src="2001:db8::a:4d:0:14", dst="2001:db8::a:4d:0:a")
            / TCPerror(sport=CLIENT[1], dport=SERVER[1], seq=seq)
        )
    else:
        pkt = (
            Ether()
            / IP(src=ROUTER, dst=CLIENT[0])
            / ICMP(type=3, code=1)
            / IPerror(src=CLIENT[0], dst=SERVER[0])
            / TCPerror(sport=CLIENT[1], dport=SERVER[1], seq=seq)
        )
    pkt.time = t
    return pkt


def test_icmp_unreachables_that_undo_backoff_are_named_and_reach_the_app(tmp_path: Path) -> None:
    # After the ICMP the gap stays 0.42 s instead of doubling.
    c, head, r1 = cut_while_sending((0.42, 0.84, 1.26))
    seg = c.segs[head - 1]
    pkts = [scapy_packet(s) for s in c.segs]
    pkts.insert(r1 + 1, icmp_unreachable(seg_time(c, r1) + 0.5, seg.seq))
    path = tmp_path / "icmp.pcap"
    wrpcap(str(path), pkts)
    analysis = analyze_file(path)
    (err,) = analysis.icmp_errors
    assert (err.frame, err.src, err.version, err.code, err.reverts_backoff) == (r1 + 2, ROUTER, 4, 1, True)
    (p,) = predictions(path, settings("tcp_retries2=3"))
    assert p.app_error == "EHOSTUNREACH"  # the ICMP's soft error, not ETIMEDOUT
    assert any("ICMP destination-unreachable" in e and ROUTER in e for e in p.explanations)


def test_icmpv6_unreachable_is_read(tmp_path: Path) -> None:
    path = tmp_path / "icmp6.pcap"
    wrpcap(str(path), [icmp_unreachable(1_700_000_000.0, 77, v6=True)])
    (err,) = analyze_file(path).icmp_errors
    # Address unreachable leaves the backoff doubling (tcp_v6_err reverts on no route only:
    # measured on 6.18, tests/unit/kernel/test_icmp_kinds.py).
    assert (err.version, err.icmp_type, err.code, err.reverts_backoff, err.tcp_seq) == (6, 1, 3, False, 77)
    assert (err.tcp_src, err.tcp_dport) == ("2001:db8::a:4d:0:14", SERVER[1])


def test_sends_failing_locally_every_500_ms_are_named(tmp_path: Path) -> None:
    c, _, r1 = cut_while_sending((0.5, 1.0, 1.5, 2.0, 2.5))
    (p,) = predictions(c.write(tmp_path / "local.pcap"), settings("tcp_retries2=3"), seg_time(c, r1) + 6)
    # Retried every 500 ms, no backoff: the first tick at or past the 3 s budget.
    assert p.predicted_s == 3.0 and p.observed_s == pytest.approx(3.0) and p.within_tolerance is True
    assert "every 500 ms, without backoff" in p.basis
    assert any("500 ms apart without doubling" in e for e in p.explanations)


def test_no_retransmission_captured_at_all(tmp_path: Path) -> None:
    c = Conv(client=CLIENT, server=SERVER)
    c.handshake()
    c.data("c", 100, dt=0.2)
    c.ack("s", dt=5.0, ack=c.segs[-1].seq)  # the capture goes on; the segment is not acknowledged
    (p,) = predictions(c.write(tmp_path / "none.pcap"), settings("tcp_retries2=5"))
    assert p.observed_s is None and p.within_tolerance is None
    assert "no retransmission" in p.observed
    assert any("did not reach the capture point" in e for e in p.explanations)


def keepalive_conv(interval: float, probes: int, rst: bool = True, answered: int = 0) -> Conv:
    """Idle, then `answered` probes each answered, then `probes` unanswered ones and the RST."""
    c = Conv(client=CLIENT, server=SERVER)
    c.handshake()
    c.data("c", 10)
    c.ack("s", dt=0.001)
    for _ in range(answered):
        c.keepalive("c", dt=2.0)
        c.ack("s", dt=0.001)
    c.keepalive("c", dt=2.0)
    for _ in range(probes - 1):
        c.keepalive("c", dt=interval)
    if rst:
        c.rst("c", dt=interval)
    return c


KA = ("tcp_keepalive_time=2", "tcp_keepalive_intvl=1", "tcp_keepalive_probes=3")


def test_keepalive_abort_is_seen_in_the_rst(tmp_path: Path) -> None:
    path = keepalive_conv(1.0, 3).write(tmp_path / "ka.pcap")
    (p,) = predictions(path, settings(*KA))
    assert (p.kind, p.side, p.predicted_s) == ("keepalive-abort", "client", 5.0)
    assert p.observed_s == pytest.approx(5.0) and p.within_tolerance is True
    assert "RST" in p.observed


@pytest.mark.parametrize("bulk", [0, 3000])
def test_keepalive_abort_counts_from_the_frame_it_names(tmp_path: Path, bulk: int) -> None:
    """The frame and the time are the same packet: the peer's last segment (the idle start),
    not the first probe with the idle start's time. `bulk`: data before it (the analysis
    applies such runs in one step; the last segment must still be known)."""
    c = Conv(client=CLIENT, server=SERVER)
    c.handshake()
    for _ in range(bulk):
        c.data("c", 1000, dt=0.0001)
        c.ack("s", dt=0.0001)
    c.data("c", 10)
    last = c.ack("s", dt=0.001)
    first_probe = c.keepalive("c", dt=2.0)
    for _ in range(2):
        c.keepalive("c", dt=1.0)
    c.rst("c", dt=1.0)
    (p,) = predictions(c.write(tmp_path / "ka.pcap"), settings(*KA))
    assert p.start_frame is not None and p.start_frame.frame == last != first_probe
    assert p.start_time == pytest.approx(seg_time(c, last)) == pytest.approx(p.start_frame.time)
    assert f"ka.pcap frame {first_probe}" in p.start and p.describe().startswith(
        f"keepalive-abort 5.000s after ka.pcap#{last} "
    )


def test_keepalive_counts_again_from_the_last_answer(tmp_path: Path) -> None:
    # Two probes answered, then three not: the abort is idle + 3 x intvl after the last answer
    # (measured: 4.096 s with 1 + 3 x 1), not after the first idle.
    c = keepalive_conv(1.0, 3, answered=2)
    answer = c.segs[-5]  # the server's last ACK, before the three unanswered probes and the RST
    (p,) = predictions(c.write(tmp_path / "ka.pcap"), settings(*KA))
    assert p.start_time == pytest.approx(answer.t)
    assert p.predicted_s == 5.0 and p.observed_s == pytest.approx(5.0) and p.within_tolerance is True


def test_keepalive_with_the_defaults_explains_each_difference(tmp_path: Path) -> None:
    (p,) = predictions(keepalive_conv(1.0, 3).write(tmp_path / "ka.pcap"), KernelSettings())
    assert p.predicted_s == 7200 + 9 * 75 and p.within_tolerance is False
    text = "\n".join(p.explanations)
    assert "every 1.000 s" in text and "3 unanswered probes" in text
    assert "idle 2.000 s + 3 x 1.000 s fits" in text


def test_keepalive_probes_every_500_ms_are_a_local_drop(tmp_path: Path) -> None:
    path = keepalive_conv(0.5, 10).write(tmp_path / "ka.pcap")  # failed probes do not count
    s = parse_settings([], ["TCP_KEEPIDLE=2", "TCP_KEEPINTVL=1", "TCP_KEEPCNT=3"])
    (p,) = predictions(path, s)
    assert p.within_tolerance is False
    assert any("every 500 ms" in e for e in p.explanations)


def test_answered_keepalives_predict_nothing(tmp_path: Path) -> None:
    c = keepalive_conv(1.0, 1, rst=False)
    c.ack("s", dt=0.001)  # the keep-alive ACK
    assert predictions(c.write(tmp_path / "ka.pcap"), KernelSettings()) == []


def test_a_closed_connection_predicts_nothing(tmp_path: Path) -> None:
    c, _, _ = cut_while_sending((0.42,))
    c.rst("s")
    assert predictions(c.write(tmp_path / "rst.pcap"), KernelSettings()) == []


def unanswered_connect(at: tuple[float, ...]) -> tuple[Conv, int]:
    c = Conv(client=CLIENT, server=SERVER)
    syn = c.send("c", "S")
    for t in at:
        c.retransmit("c", syn, dt=c.segs[syn - 1].t + t - c.t)
    return c, syn


def test_a_connect_timeout_is_tcp_syn_retries_not_tcp_retries2(tmp_path: Path) -> None:
    # Measured with tcp_syn_retries=2: five SYNs about 1.02 s apart, ETIMEDOUT 7.13 s after the
    # first: tcp_model_timeout(2, 1 s) = 7 s ends it before the count of 6.
    c, syn = unanswered_connect((1.02, 2.04, 3.07, 4.09, 5.11))
    end = c.segs[syn - 1].t + 8
    (p,) = predictions(c.write(tmp_path / "syn.pcap"), settings("tcp_syn_retries=2", "tcp_retries2=15"), end)
    assert (p.kind, p.side, p.predicted_s) == ("connect-timeout", "client", 7.0)
    assert p.start_frame is not None and p.start_frame.frame == syn
    assert p.observed_s == pytest.approx(7.0 * 1.02, rel=0.02) and p.within_tolerance is True
    assert "tcp_syn_retries=2" in p.basis and "924" not in p.basis
    last = c.segs[-1].t - c.segs[syn - 1].t
    assert p.observed.startswith(f"inferred: no SYN after the one {last:.3f} s after the first, so")
    assert "+" not in p.observed


def test_a_connect_with_the_defaults_takes_131_s(tmp_path: Path) -> None:
    c, syn = unanswered_connect((1.02, 2.04))
    (p,) = predictions(c.write(tmp_path / "syn.pcap"), KernelSettings(), c.segs[syn - 1].t + 3)
    assert p.predicted_s == 131.0 and p.observed_s is None
    assert p.observed.startswith("still connecting when the capture ended")


def test_a_connect_ended_by_icmp_is_not_a_timeout(tmp_path: Path) -> None:
    # The first ICMP is lost to the locked socket; the retransmitted SYN's ICMP ends it.
    c, syn = unanswered_connect((1.02,))
    seg = c.segs[syn - 1]
    pkts = [scapy_packet(s) for s in c.segs]
    pkts.insert(1, icmp_unreachable(seg.t + 0.0001, seg.seq))
    pkts.append(icmp_unreachable(c.segs[-1].t + 0.0001, seg.seq))
    path = tmp_path / "icmp-syn.pcap"
    wrpcap(str(path), pkts)
    (p,) = predictions(path, KernelSettings(), c.segs[-1].t + 3)
    assert (p.kind, p.predicted_s, p.app_error) == ("icmp-error", 0.0, "EHOSTUNREACH")
    assert p.start_frame is not None and p.start_frame.frame == 4  # the second ICMP
    assert p.observed_s == 0.0 and p.within_tolerance is True
    text = "\n".join(p.explanations)
    assert "ended by ICMP host unreachable" in text and "LockDroppedIcmps" in text
    assert "timeout" not in p.basis.replace("not a timeout", "")


def test_a_syn_ack_never_acknowledged_is_dropped_by_tcp_synack_retries(tmp_path: Path) -> None:
    c = Conv(client=CLIENT, server=SERVER)
    c.send("c", "S")
    first = c.send("s", "SA", dt=0.001)
    for t in (1.01, 3.03):
        c.retransmit("s", first, dt=c.segs[first - 1].t + t - c.t)
    end = c.segs[first - 1].t + 9
    (p,) = predictions(c.write(tmp_path / "synack.pcap"), settings("tcp_synack_retries=2"), end)
    assert (p.kind, p.side, p.predicted_s, p.app_error) == ("synack-timeout", "server", 7.0, "nothing")
    assert p.observed_s == pytest.approx(7.0, rel=0.02) and p.within_tolerance is True


def test_a_prediction_reads_back_from_its_json_and_from_an_older_run() -> None:
    p = KernelPrediction("rto-abort", "client", 6.24, 100.0, "r1", "tcp_retries2=3", 6.25, "inferred")
    p.alternatives = [3.1]
    back = prediction_from_json(prediction_json(p))
    assert back == p
    old = {
        "kind": "user-timeout",
        "seconds": 4.0,
        "start": {"file": "c.pcap", "frame": 9, "time": 5.0},
        "basis": "x",
    }
    q = prediction_from_json(old)
    assert (q.kind, q.predicted_s, q.start_time, q.start_frame and q.start_frame.frame) == (
        "rto-abort",
        4.0,
        5.0,
        9,
    )


def test_settings_parse_units_and_report_every_problem() -> None:
    s = parse_settings(["net.ipv4.tcp_retries2=8", "tcp_keepalive_time=30"], ["TCP_USER_TIMEOUT=1500"])
    assert (s.retries2, s.keepalive_time, s.user_timeout) == (8, 30.0, 1.5)
    assert s.label("retries2") == "tcp_retries2=8" and s.label("keepalive_probes").endswith(
        "(kernel default)"
    )
    assert parse_settings([], ["TCP_USER_TIMEOUT=2s", "tcp_keepidle=5"]).user_timeout == 2.0
    with pytest.raises(UsageError) as err:
        parse_settings(["tcp_fin_timeout=3", "tcp_retries2=x", "novalue"], ["TCP_KEEPCNT=2.5"])
    lines = str(err.value).splitlines()
    assert len(lines) == 4 and "tcp_fin_timeout" in lines[0] and "'x'" in lines[1]
