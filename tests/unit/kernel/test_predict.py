"""The kernel model's predictions next to crafted captures, and the causes found when they differ:
a tail-loss probe, ICMP unreachables that undo a backoff step, sends failing locally."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, IPerror, TCPerror
from scapy.layers.inet6 import ICMPv6DestUnreach, IPerror6, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

from orchestrator.errors import UsageError
from orchestrator.kernel.predict import KernelPrediction, predict_connection
from orchestrator.kernel.settings import KernelSettings, parse_settings
from orchestrator.tcp.analysis import analyze_file
from tests.helpers.pcaps import Conv, scapy_packet

CLIENT, SERVER, ROUTER = ("10.77.0.20", 40000), ("10.77.0.10", 7000), "10.77.0.1"


def lost_segment(resends: list[float]) -> tuple[Conv, int]:
    """A connection whose last data segment is sent again at `resends` (seconds after its
    first send) and never acknowledged. Returns it and the segment's frame."""
    c = Conv(client=CLIENT, server=SERVER)
    c.handshake()
    c.data("c", 100)
    c.ack("s", dt=0.001)
    first = c.data("c", 100, dt=0.2)
    start = c.t
    for at in resends:
        c.retransmit("c", first, dt=start + at - c.t)
    return c, first


def predictions(path: Path, settings: KernelSettings) -> list[KernelPrediction]:
    analysis = analyze_file(path)
    (conn,) = analysis.connections
    return predict_connection(conn, lambda side: settings, analysis.icmp_errors)


def settings(*sysctls: str) -> KernelSettings:
    return parse_settings(list(sysctls), [])


def test_rto_abort_on_the_models_schedule_is_within_tolerance(tmp_path: Path) -> None:
    c, first = lost_segment([0.2, 0.6, 1.4, 3.0, 6.2])  # RTO 200 ms, doubling: tcp_retries2=5
    (p,) = predictions(c.write(tmp_path / "cut.pcap"), settings("net.ipv4.tcp_retries2=5"))
    assert (p.kind, p.side, p.predicted_s) == ("rto-abort", "client", 12.6)
    assert f"frame {first}" in p.start and p.start_time == pytest.approx(c.segs[first - 1].t)
    assert p.observed_s == pytest.approx(12.6)  # the next expiry after the last retransmission
    assert p.deviation == pytest.approx(0, abs=1e-4) and p.within_tolerance is True
    assert p.explanations == [] and "tcp_retries2=5" in p.basis


def test_rto_abort_with_the_default_budget_names_the_setting_that_fits(tmp_path: Path) -> None:
    c, _ = lost_segment([0.2, 0.6, 1.4, 3.0, 6.2])
    (p,) = predictions(c.write(tmp_path / "cut.pcap"), KernelSettings())
    assert p.predicted_s == 924.6 and "kernel default" in p.basis
    assert p.within_tolerance is False and p.deviation == pytest.approx(12.6 / 924.6 - 1, abs=1e-4)
    assert p.explanations == ["tcp_retries2=5 (12.6 s) fits what the capture shows"]


def test_a_tail_loss_probe_explains_a_late_abort(tmp_path: Path) -> None:
    # tcp_retries2=3: a 3 s budget. The probe at 0.4 s, then RTOs of 0.2, 0.4, 0.8 s; the timer
    # fires next at 3.4 s, past the budget, and the kernel gives up there.
    c, _ = lost_segment([0.4, 0.6, 1.0, 1.8])
    (p,) = predictions(c.write(tmp_path / "tlp.pcap"), settings("tcp_retries2=3"))
    assert p.predicted_s == 3.0 and p.observed_s == pytest.approx(3.4)
    assert p.within_tolerance is False
    assert len(p.explanations) == 1 and "tail-loss probe" in p.explanations[0]


def test_an_rto_above_the_floor_is_named(tmp_path: Path) -> None:
    c, _ = lost_segment([0.5, 1.5, 3.5])  # RTO 0.5 s: srtt + 4 x rttvar above 200 ms
    (p,) = predictions(c.write(tmp_path / "slow.pcap"), settings("tcp_retries2=3"))
    assert p.observed_s == pytest.approx(7.5) and p.within_tolerance is False
    assert any("the RTO began at 0.500 s" in e for e in p.explanations)
    assert not any("tail-loss" in e for e in p.explanations)


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


def test_icmp_unreachables_that_undo_backoff_are_named(tmp_path: Path) -> None:
    # After the ICMP at 0.65 s the gap stays 0.4 s instead of doubling to 0.8 s.
    c, first = lost_segment([0.2, 0.6, 1.0, 1.8])
    seg = c.segs[first - 1]
    pkts = [scapy_packet(s) for s in c.segs]
    pkts.insert(first + 2, icmp_unreachable(seg.t + 0.65, seg.seq))
    path = tmp_path / "icmp.pcap"
    wrpcap(str(path), pkts)
    analysis = analyze_file(path)
    (err,) = analysis.icmp_errors
    assert (err.frame, err.src, err.version, err.code, err.reverts_backoff) == (first + 3, ROUTER, 4, 1, True)
    assert (err.tcp_src, err.tcp_sport, err.tcp_dst, err.tcp_dport, err.tcp_seq) == (
        *CLIENT,
        *SERVER,
        seg.seq,
    )
    assert analysis.packets == len(pkts) and analysis.tcp_packets == len(pkts) - 1
    (p,) = predictions(path, settings("tcp_retries2=3"))
    assert p.within_tolerance is False  # the next expiry is at 3.4 s, past the 3 s budget
    assert any("ICMP destination-unreachable" in e and ROUTER in e for e in p.explanations)


def test_icmpv6_unreachable_is_read(tmp_path: Path) -> None:
    path = tmp_path / "icmp6.pcap"
    wrpcap(str(path), [icmp_unreachable(1_700_000_000.0, 77, v6=True)])
    (err,) = analyze_file(path).icmp_errors
    assert (err.version, err.code, err.reverts_backoff, err.tcp_seq) == (6, 3, True, 77)
    assert (err.tcp_src, err.tcp_dport) == ("2001:db8::a:4d:0:14", SERVER[1])


def test_sends_failing_locally_every_500_ms_are_named(tmp_path: Path) -> None:
    c, _ = lost_segment([0.2, 0.7, 1.2, 1.7, 2.2, 2.7])
    (p,) = predictions(c.write(tmp_path / "local.pcap"), settings("tcp_retries2=3"))
    assert p.within_tolerance is False
    assert any("500 ms apart without doubling" in e for e in p.explanations)


def test_no_retransmission_captured_at_all(tmp_path: Path) -> None:
    c, _ = lost_segment([])
    c.ack("s", dt=5.0, ack=c.segs[-1].seq)  # the capture goes on; the segment is not acknowledged
    (p,) = predictions(c.write(tmp_path / "none.pcap"), settings("tcp_retries2=5"))
    assert p.observed_s is None and p.within_tolerance is None
    assert "no retransmission" in p.observed
    assert any("did not reach the capture point" in e for e in p.explanations)


def keepalive_conv(interval: float, probes: int, rst: bool = True) -> Conv:
    c = Conv(client=CLIENT, server=SERVER)
    c.handshake()
    c.data("c", 10)
    c.ack("s", dt=0.001)
    c.keepalive("c", dt=2.0)
    for _ in range(probes - 1):
        c.keepalive("c", dt=interval)
    if rst:
        c.rst("c", dt=interval)
    return c


def test_keepalive_abort_is_seen_in_the_rst(tmp_path: Path) -> None:
    path = keepalive_conv(1.0, 3).write(tmp_path / "ka.pcap")
    s = settings("tcp_keepalive_time=2", "tcp_keepalive_intvl=1", "tcp_keepalive_probes=3")
    (p,) = predictions(path, s)
    assert (p.kind, p.side, p.predicted_s) == ("keepalive-abort", "client", 5.0)
    assert p.observed_s == pytest.approx(5.0) and p.within_tolerance is True
    assert "RST" in p.observed


def test_keepalive_with_the_defaults_explains_each_difference(tmp_path: Path) -> None:
    (p,) = predictions(keepalive_conv(1.0, 3).write(tmp_path / "ka.pcap"), KernelSettings())
    assert p.predicted_s == 7200 + 9 * 75 and p.within_tolerance is False
    text = "\n".join(p.explanations)
    assert "after 2.000 s idle" in text and "every 1.000 s" in text and "3 probes" in text
    assert "idle 2.000 s + 3 x 1.000 s fits" in text


def test_keepalive_probes_every_500_ms_are_a_local_drop(tmp_path: Path) -> None:
    path = keepalive_conv(0.5, 8).write(tmp_path / "ka.pcap")  # failed probes do not count
    s = parse_settings([], ["TCP_KEEPIDLE=2", "TCP_KEEPINTVL=1", "TCP_KEEPCNT=3"])
    (p,) = predictions(path, s)
    assert p.within_tolerance is False
    assert any("every 500 ms" in e for e in p.explanations)


def test_answered_keepalives_predict_nothing(tmp_path: Path) -> None:
    c = keepalive_conv(1.0, 1, rst=False)
    c.ack("s", dt=0.001)  # the keep-alive ACK
    assert predictions(c.write(tmp_path / "ka.pcap"), KernelSettings()) == []


def test_a_closed_connection_predicts_nothing(tmp_path: Path) -> None:
    c, _ = lost_segment([0.2])
    c.rst("s")
    assert predictions(c.write(tmp_path / "rst.pcap"), KernelSettings()) == []


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
