"""The ss parser on real output: every state and timer kind, IPv4 and IPv6, listeners' queues."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backend.docker.sampler_loop import sample_block
from orchestrator.verdict.ss_output import SocketSample, endpoint, parse_ss, read_sample_file, time_left

RECORDED = Path(__file__).parent / "recorded"


def loopback() -> list[list[SocketSample]]:
    return [s.sockets for s in read_sample_file((RECORDED / "loopback.ss-samples.txt").read_text())]


def one(sockets: list[SocketSample], local: str, peer: str) -> SocketSample:
    found = [s for s in sockets if s.local == local and s.peer == peer]
    assert len(found) == 1, (local, peer, [(s.local, s.peer) for s in sockets])
    return found[0]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("380ms", 0.38),
        ("092ms", 0.092),
        ("1.632ms", 1.632),  # iproute2: seconds, a dot, then milliseconds
        ("59sec", 59.0),
        ("1min5sec", 65.0),
        ("119min", 7140.0),
        ("", 0.0),
        ("soon", None),
    ],
)
def test_timer_times_as_ss_prints_them(text: str, seconds: float | None) -> None:
    assert time_left(text) == seconds


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("10.77.0.20:5555", "10.77.0.20:5555"),
        ("[::ffff:10.77.0.20]:5555", "10.77.0.20:5555"),  # a dual-stack listener's IPv4 peer
        ("[::1]:7000", "[::1]:7000"),
        ("[fd77:0:0::10]:80", "[fd77::10]:80"),
        ("127.0.0.53%lo:53", "127.0.0.53:53"),
        ("0.0.0.0:*", "0.0.0.0:*"),
        ("*:7000", "*:7000"),
    ],
)
def test_endpoints_are_written_as_the_pcap_contract_writes_them(text: str, normal: str) -> None:
    assert endpoint(text) == normal


def test_listeners_show_their_accept_queue_and_backlog() -> None:
    first = loopback()[0]
    listener = one(first, "127.0.0.1:7000", "0.0.0.0:*")
    assert listener.listening and (listener.recv_q, listener.send_q) == (2, 8)
    assert one(first, "[::1]:7000", "[::]:*").send_q == 8
    assert "accept queue 2/8" in listener.describe()


def test_keepalive_timewait_persist_and_plain_sockets() -> None:
    first = loopback()[0]
    ka = one(first, "127.0.0.1:49584", "127.0.0.1:7000")
    assert (ka.state, ka.timer, ka.timer_left_s, ka.timer_count) == ("ESTAB", "keepalive", 29.0, 0)
    zero_window = one(first, "127.0.0.1:45262", "127.0.0.1:7100")
    assert (zero_window.timer, zero_window.timer_left_s, zero_window.send_q) == ("persist", 0.14, 2803712)
    receiver = one(first, "127.0.0.1:7100", "127.0.0.1:45262")
    assert (receiver.timer, receiver.recv_q) == ("none", 4096)
    tw = one(first, "[::1]:44796", "[::1]:7000")
    assert (tw.state, tw.timer, tw.timer_left_s) == ("TIME-WAIT", "timewait", 59.0)
    orphan = one(first, "[::1]:44794", "[::1]:7000")  # closed by its app: a timewait sock in FIN-WAIT-2
    assert (orphan.state, orphan.timer, orphan.rto_ms) == ("FIN-WAIT-2", "timewait", None)
    assert one(first, "[::1]:7000", "[::1]:44794").state == "CLOSE-WAIT"
    plain = one(first, "127.0.0.1:49556", "127.0.0.1:7000")
    assert (plain.timer, plain.rto_ms, plain.lastsnd_ms, plain.backoff, plain.retrans_total) == (
        "none",
        204.0,
        216,
        0,
        0,
    )


def test_retransmissions_climb_with_the_timer_on() -> None:
    samples = loopback()
    v4 = [one(s, "127.0.0.1:40954", "127.0.0.1:7200") for s in samples[1:]]
    assert [s.timer for s in v4] == ["on"] * 4
    assert [s.timer_count for s in v4] == sorted(s.timer_count for s in v4)
    last = v4[-1]
    assert (last.timer_count, last.backoff, last.rto_ms, last.retrans, last.retrans_total, last.unacked) == (
        4,
        4,
        3200.0,
        1,
        5,
        1,
    )
    assert last.timer_left_s == 2.8
    v6 = one(samples[-1], "[::1]:44802", "[::1]:7000")
    assert (v6.timer, v6.timer_count, v6.retrans_total) == ("on", 4, 5)
    syn = one(samples[-1], "[::1]:42722", "[::1]:7300")
    assert (syn.state, syn.timer, syn.timer_count, syn.retrans_total, syn.rto_ms) == (
        "SYN-SENT",
        "on",
        3,
        3,
        1000.0,
    )


def test_sends_failing_locally_back_off_on_the_probe_timer_without_retransmitting() -> None:
    # OUTPUT drops them: the data never left, so nothing is in flight to retransmit.
    s = one(loopback()[-1], "127.0.0.1:36296", "127.0.0.1:7400")
    assert (s.timer, s.backoff, s.retrans_total, s.unacked) == ("persist", 4, 0, 0)


def test_a_sample_cut_short_or_failed_says_nothing_about_the_sockets() -> None:
    good = sample_block(1, 100.0, 0.004, 0, "State Recv-Q Send-Q Local Address:Port Peer Address:Port\n")
    failed = sample_block(1, 100.2, 0.001, 1, "Cannot open netlink socket\n")
    cut = "# tcpscen-ss boot=1 t=100.400000 took=0.004000 rc=0\nESTAB 0 0 10.0.0.1:1 10.0.0.2:2\n"
    samples = read_sample_file(good + failed + cut)
    assert [(s.t, s.ok, s.sockets) for s in samples] == [(100.002, True, []), (100.2005, False, [])]


def test_the_end_snapshot_as_ss_pads_it() -> None:
    text = (
        "State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process          \n"
        "ESTAB  0      0         10.77.0.10:7000    10.77.0.20:52344 timer:(keepalive,1.936ms,0)\n"
        "\t ts sack bbr wscale:10,10 rto:204 rtt:0.083/0.04 lastsnd:88 lastrcv:88 lastack:88    \n"
        "TIME-WAIT 0   0         10.77.0.10:7000    10.77.0.20:52000 timer:(timewait,59sec,0)\n"
        "\t                                  \n"
    )
    estab, tw = parse_ss(text, 5.0, 2)
    assert (estab.t, estab.boot, estab.timer_left_s, estab.lastrcv_ms) == (5.0, 2, 1.936, 88)
    assert (tw.state, tw.local, tw.peer, tw.rto_ms) == (
        "TIME-WAIT",
        "10.77.0.10:7000",
        "10.77.0.20:52000",
        None,
    )
