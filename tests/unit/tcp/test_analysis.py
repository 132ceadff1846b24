"""Per-connection facts from crafted captures. Every capture is also checked against tshark:
the retransmission, keep-alive, zero-window and RST frames, and where connections begin and end,
must be Wireshark's (skipped, after our own assertions, only when tshark is not installed)."""

from __future__ import annotations

import heapq
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.kernel.timers import backoff_schedule
from orchestrator.pcap.reader import TcpPacket, read_tcp
from orchestrator.tcp import loop
from orchestrator.tcp.analysis import MAX_EVIDENCE, analyze, analyze_file
from orchestrator.tcp.connection import ConnectionSummary, FrameRef
from tests.helpers.pcaps import (
    T0,
    Conv,
    Seg,
    random_capture,
    tshark,
    tshark_fields,
    write_fast,
    zero_window_backoff,
)


def run(c: Conv, path: Path, **kw: object) -> list[ConnectionSummary]:
    c.write(path, **kw)  # type: ignore[arg-type]
    return analyze(read_tcp(path))


def frames(refs: list[FrameRef]) -> list[int]:
    return [r.frame for r in refs]


def agrees_with_tshark(path: Path, conns: list[ConnectionSummary]) -> None:
    """Our frames for retransmission, keep-alive, zero window and RST, and our connection
    boundaries, are exactly tshark's. Call it after the test's own assertions."""
    if not tshark():
        pytest.skip("tshark is not installed: cannot compare with Wireshark")
    rows = tshark_fields(
        path,
        [
            "frame.number",
            "tcp.stream",
            "tcp.analysis.retransmission",
            "tcp.analysis.keep_alive",
            "tcp.analysis.zero_window",
            "tcp.flags.reset",
        ],
        "tcp",
    )
    theirs: dict[str, set[int]] = {"retx": set(), "ka": set(), "zw": set(), "rst": set()}
    streams: dict[int, list[int]] = {}
    for frame, stream, retx, ka, zw, rst in rows:
        f = int(frame)
        streams.setdefault(int(stream), []).append(f)
        for key, value in (("retx", retx), ("ka", ka), ("zw", zw)):
            if value:
                theirs[key].add(f)
        if rst == "1":
            theirs["rst"].add(f)
    ours: dict[str, set[int]] = {"retx": set(), "ka": set(), "zw": set(), "rst": set()}
    for c in conns:
        for key, evidence, counts in (
            ("retx", c.retransmission_frames, c.retransmissions),
            ("ka", c.keepalive_frames, c.keepalive_probes),
            ("zw", c.zero_window_frames, c.zero_window),
            ("rst", c.rsts, None),
        ):
            for side in ("client", "server"):
                got = evidence.of(side)
                assert len(got) < MAX_EVIDENCE, "evidence capped: frame sets cannot be compared"
                if counts is not None:
                    assert counts.get(side) == len(got)
                ours[key] |= set(frames(got))
    assert ours == theirs
    mine = [
        (c.first_frame.frame, c.last_frame.frame, c.packets) for c in conns if c.first_frame and c.last_frame
    ]
    assert mine == [(v[0], v[-1], len(v)) for _, v in sorted(streams.items())]


# ---------------------------------------------------------------------------
# Closes


def test_four_packet_close(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 100)
    c.ack("s")
    c.data("s", 200)
    c.ack("c")
    fin_c = c.fin("c")
    c.ack("s")
    fin_s = c.fin("s", dt=0.05)
    c.ack("c")
    path = tmp_path / "close4.pcap"
    (conn,) = run(c, path)
    assert (conn.client, conn.server) == ("10.0.0.1:40000", "10.0.0.2:80")
    assert conn.handshake == "complete"
    assert (conn.close, conn.initiator, conn.close_packets, conn.rst_from) == ("fin", "client", 4, None)
    assert frames(conn.fins.client) == [fin_c] and frames(conn.fins.server) == [fin_s]
    assert conn.retransmissions.client == conn.retransmissions.server == 0
    assert conn.keepalive is None and conn.backoff_gaps_s == [] and conn.oldest_unacked is None
    assert (
        conn.first_frame and conn.first_frame.frame == 1 and conn.last_frame and conn.last_frame.frame == 11
    )
    assert conn.syn and conn.syn.frame == 1
    assert conn.last_activity and conn.last_activity.frame == fin_s
    assert conn.duration_s == pytest.approx(c.segs[-1].t - c.segs[0].t, abs=1e-6)
    assert conn.packets == 11 and conn.stream == 0
    assert any("4-packet close" in n for n in conn.notes)
    agrees_with_tshark(path, [conn])


def test_three_packet_close_started_by_the_server(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 10)
    c.data("s", 10)
    c.fin("s")
    c.send("c", "FA", dt=0.001)  # its ACK of the server's FIN, merged with its own FIN
    c.ack("s")
    path = tmp_path / "close3.pcap"
    (conn,) = run(c, path)
    assert (conn.close, conn.initiator, conn.close_packets) == ("fin", "server", 3)
    assert any("3-packet close" in n and "merged" in n for n in conn.notes)
    agrees_with_tshark(path, [conn])


def test_fin_unanswered(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.fin("c")
    c.ack("s")
    path = tmp_path / "half.pcap"
    (conn,) = run(c, path)
    assert (conn.close, conn.initiator, conn.close_packets) == ("fin-unanswered", "client", None)
    agrees_with_tshark(path, [conn])


def test_rst(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 100)
    c.ack("s")
    rst = c.rst("s")
    path = tmp_path / "rst.pcap"
    (conn,) = run(c, path)
    assert (conn.close, conn.rst_from, conn.initiator, conn.close_packets) == ("rst", "server", None, None)
    assert frames(conn.rsts.server) == [rst] and conn.rsts.client == []
    agrees_with_tshark(path, [conn])


def test_fin_answered_by_rst_is_a_reset(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("s", 100)
    c.fin("c")  # the client closes with data unread...
    c.rst("s")  # ...and the server resets instead of sending its FIN
    path = tmp_path / "finrst.pcap"
    (conn,) = run(c, path)
    assert (conn.close, conn.initiator, conn.rst_from, conn.close_packets) == (
        "rst",
        "client",
        "server",
        None,
    )
    assert any("reset by server after client's FIN" in n for n in conn.notes)
    agrees_with_tshark(path, [conn])


def test_rst_after_both_fins_keeps_a_fin_close(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.fin("c")
    c.send("s", "FA", dt=0.001)
    c.ack("c")
    c.data("s", 10, dt=0.5)  # a late segment...
    rst = c.rst("c", with_ack=False)  # ...hits a closed socket
    path = tmp_path / "late.pcap"
    (conn,) = run(c, path)
    assert (conn.close, conn.close_packets, conn.rst_from) == ("fin", 3, "client")
    assert frames(conn.rsts.client) == [rst]
    assert any("after the FIN exchange" in n for n in conn.notes)
    agrees_with_tshark(path, [conn])


# ---------------------------------------------------------------------------
# Retransmissions


def test_rto_backoff_then_silence(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 100)
    c.ack("s")
    original = c.data("c", 500, dt=1.0)
    retx = [c.retransmit("c", original, dt=g) for g in (0.2, 0.4, 0.8, 1.6, 3.2)]
    path = tmp_path / "rto.pcap"
    (conn,) = run(c, path)
    assert conn.retransmissions.client == 5 and conn.retransmissions.server == 0
    assert conn.backoff_gaps_s == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2], abs=2e-6)
    assert conn.backoff_gaps_s == pytest.approx(backoff_schedule(5)[:5], abs=2e-6)  # the model agrees
    assert frames(conn.backoff_frames) == [original, *retx]
    assert frames(conn.retransmission_frames.client) == retx
    assert conn.oldest_unacked and conn.oldest_unacked.frame == original
    assert conn.last_activity and conn.last_activity.frame == retx[-1]
    assert conn.close == "none" and conn.rst_from is None
    assert (
        "client retransmitted 5 times with gaps 0.2, 0.4, 0.8, 1.6, 3.2 s, "
        "then sent nothing more: no FIN, no RST" in conn.notes
    )
    agrees_with_tshark(path, [conn])


def test_the_head_is_not_always_the_most_retransmitted_segment(tmp_path: Path) -> None:
    """One segment retransmitted three times, then acknowledged; the next one twice, never: the
    backoff is the first's, the head (what the timer follows) the second's, and the note tells
    the connection's count from the segment's."""
    c = Conv()
    c.handshake()
    lost = c.data("c", 100)
    again = [c.retransmit("c", lost, dt=g) for g in (0.2, 0.4, 0.8)]
    c.ack("s")
    head = c.data("c", 100, dt=0.5)
    timer = [c.retransmit("c", head, dt=g) for g in (0.2, 0.4)]
    path = tmp_path / "two.pcap"
    (conn,) = run(c, path)
    assert frames(conn.backoff_frames) == [lost, *again]
    assert conn.oldest_unacked and conn.oldest_unacked.frame == head
    assert frames(conn.head_frames) == [head, *timer]
    assert conn.head_after_new_data is False
    note = "client retransmitted 5 times; its most-retransmitted segment 3 times with gaps 0.2, 0.4"
    assert any(n.startswith(note) for n in conn.notes), conn.notes
    agrees_with_tshark(path, [conn])


def test_retransmission_then_ack(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    first = c.data("c", 100)
    c.retransmit("c", first, dt=0.3)
    c.ack("s")
    path = tmp_path / "recovered.pcap"
    (conn,) = run(c, path)
    assert conn.retransmissions.client == 1 and conn.oldest_unacked is None
    assert any("then the segment was acknowledged" in n for n in conn.notes)
    agrees_with_tshark(path, [conn])


def test_fast_and_spurious_count_out_of_order_does_not(tmp_path: Path) -> None:
    c = Conv()
    c.handshake(rtt=0.05)
    c.data("s", 10)
    lost = c.data("c", 100)
    c.data("c", 100, dt=0.001)
    for _ in range(3):  # the server's duplicate ACKs ask again for the first one
        c.ack("s", dt=0.001, ack=c.segs[lost - 1].seq)
    fast = c.retransmit("c", lost, dt=0.002)
    c.ack("s")  # everything acknowledged
    spurious = c.retransmit("c", lost, dt=0.3)  # sent again anyway
    # Out of order: the next segment shows up before this one, within the initial RTT.
    c.nxt["c"] += 100
    c.data("c", 100, dt=0.2)
    c.nxt["c"] -= 200
    ooo = c.data("c", 100, dt=0.001)
    path = tmp_path / "kinds.pcap"
    (conn,) = run(c, path)
    assert frames(conn.retransmission_frames.client) == [fast, spurious]
    assert ooo not in frames(conn.retransmission_frames.client)
    agrees_with_tshark(path, [conn])


def test_a_spurious_retransmission_after_the_ack_continues_its_segments_history(tmp_path: Path) -> None:
    """An ACK between a segment's fast and its spurious retransmission must not start a new
    history: that segment stays the most retransmitted, with its original send first."""
    c = Conv()
    c.handshake(rtt=0.05)
    lost = c.data("c", 100)
    c.data("c", 100, dt=0.001)
    for _ in range(3):
        c.ack("s", dt=0.001, ack=c.segs[lost - 1].seq)
    fast = c.retransmit("c", lost, dt=0.002)
    c.ack("s")  # both acknowledged
    spurious = c.retransmit("c", lost, dt=0.3)
    other = c.data("c", 100, dt=0.1)
    c.retransmit("c", other, dt=0.3)  # another segment, retransmitted once
    c.ack("s", dt=0.01)
    path = tmp_path / "history.pcap"
    (conn,) = run(c, path)
    assert frames(conn.backoff_frames) == [lost, fast, spurious]
    assert len(conn.backoff_gaps_s) == 2
    agrees_with_tshark(path, [conn])


def test_retransmissions_whose_original_was_acknowledged_in_this_capture(tmp_path: Path) -> None:
    """The receiver's own capture of a one-way cut: its ACKs left, never arrived, and the
    sender sent again. The original is in this capture: the note must not say it was not."""
    c = Conv()
    c.handshake()
    seg = c.data("c", 100)
    c.ack("s", dt=0.001)  # lost on its way back
    c.retransmit("c", seg, dt=0.41)
    c.ack("s", dt=0.001)  # a duplicate ACK (D-SACK in the real kernel)
    c.retransmit("c", seg, dt=0.42)
    path = tmp_path / "acked.pcap"
    (conn,) = run(c, path)
    note = next(n for n in conn.notes if n.startswith("client retransmitted"))
    assert "had acknowledged the segment before it came again" in note and "the ACK lost or late" in note
    assert "not captured" not in note


def test_retransmissions_whose_original_was_not_captured(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    seq = c.nxt["c"]
    c.send("c", "PA", 100, dt=0.01, seq=seq + 100)  # the next segment; the one before it was lost
    c.send("c", "PA", 100, dt=0.41, seq=seq)  # ... before the capture point: its first send is here
    c.send("c", "PA", 100, dt=0.42, seq=seq)
    path = tmp_path / "late.pcap"
    (conn,) = run(c, path)
    note = next(n for n in conn.notes if n.startswith("client retransmitted"))
    assert "the original send was not captured" in note and "acknowledged" not in note


def test_new_data_before_the_first_retransmission_is_known(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    head = c.data("c", 100)
    c.data("c", 100, dt=0.205)  # a tail-loss probe carrying new data
    c.retransmit("c", head, dt=0.208)
    (conn,) = run(c, tmp_path / "new.pcap")
    assert conn.backoff_after_new_data is True
    c2 = Conv()
    c2.handshake()
    head = c2.data("c", 100)
    c2.retransmit("c", head, dt=0.205)  # the probe re-sends the only segment
    c2.retransmit("c", head, dt=0.208)
    (conn2,) = run(c2, tmp_path / "same.pcap")
    assert conn2.backoff_after_new_data is False


def test_the_same_syn_again_restores_the_expected_sequence(tmp_path: Path) -> None:
    """Wireshark's issue 17616: a SYN repeated mid-connection puts the next expected seq back to
    the highest contiguous one, so data filling a hole afterwards is not a retransmission."""
    c = Conv()
    c.handshake(rtt=0.01)
    c.data("c", 100)
    hole = c.nxt["c"]
    c.send("c", "PA", 100, dt=0.1, seq=hole + 100)  # the segment before it was not captured
    syn = c.send("c", "S", dt=1.0, seq=c.isn[0])
    fill = c.send("c", "PA", 100, dt=1.0, seq=hole)
    path = tmp_path / "resyn.pcap"
    (conn,) = run(c, path)
    assert frames(conn.retransmission_frames.client) == [syn]
    assert fill not in frames(conn.retransmission_frames.client)
    agrees_with_tshark(path, [conn])


def test_connect_timeout(tmp_path: Path) -> None:
    c = Conv()
    syn = c.send("c", "S")
    retx = [c.send("c", "S", dt=g, seq=c.isn[0]) for g in (1.0, 2.0, 4.0)]
    path = tmp_path / "syn.pcap"
    (conn,) = run(c, path)
    assert conn.handshake == "partial" and conn.close == "none"
    assert conn.retransmissions.client == 3
    assert conn.backoff_gaps_s == pytest.approx([1.0, 2.0, 4.0], abs=2e-6)
    assert frames(conn.backoff_frames) == [syn, *retx]
    assert conn.oldest_unacked and conn.oldest_unacked.frame == syn
    assert any("SYN was never answered" in n for n in conn.notes)
    # Whether it timed out, or an ICMP ended it, is the kernel model's to say, not the notes'.
    assert any(n.endswith("then sent no more SYNs") for n in conn.notes)
    assert not any("timeout" in n for n in conn.notes)
    agrees_with_tshark(path, [conn])


def test_connection_refused(tmp_path: Path) -> None:
    c = Conv()
    c.send("c", "S")
    c.send("s", "RA", dt=0.001, seq=0)
    path = tmp_path / "refused.pcap"
    (conn,) = run(c, path)
    assert (conn.handshake, conn.close, conn.rst_from) == ("partial", "rst", "server")
    assert "connection refused: the server answered the SYN with RST" in conn.notes
    agrees_with_tshark(path, [conn])


# ---------------------------------------------------------------------------
# Keep-alive and zero window


def test_keepalive_probes_then_rst(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    data = c.data("c", 100)
    last_rx = c.ack("s", dt=0.001)
    probes = [c.keepalive("c", dt=2.0)] + [c.keepalive("c", dt=1.0) for _ in range(2)]
    rst = c.rst("c", dt=1.0)
    path = tmp_path / "ka.pcap"
    (conn,) = run(c, path)
    assert conn.keepalive_probes.client == 3 and conn.keepalive_probes.server == 0
    assert frames(conn.keepalive_frames.client) == probes
    assert conn.keepalive is not None
    assert conn.keepalive.first_after_idle_s == pytest.approx(2.0)
    assert conn.keepalive.interval_s == pytest.approx(1.0)
    assert (conn.close, conn.rst_from) == ("rst", "client") and frames(conn.rsts.client) == [rst]
    assert conn.retransmissions.client == 0  # probes are not retransmissions
    assert conn.last_activity and conn.last_activity.frame == data
    assert conn.oldest_unacked is None
    assert "RST from client after 3 unanswered keep-alive probes (keepalive failure)" in conn.notes
    assert (conn.keepalive.run_probes, conn.keepalive.run_from) == (3, pytest.approx(c.segs[last_rx - 1].t))
    assert conn.keepalive_answered.client == 0
    agrees_with_tshark(path, [conn])


def test_keepalive_answered(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("s", 50)
    c.ack("c", dt=0.04)  # delayed ACK: idle counts from the server's data, the peer's last segment
    for _ in range(2):
        c.keepalive("c", dt=15.0)
        c.ack("s", dt=0.001)  # keep-alive ACK
    path = tmp_path / "ka-ok.pcap"
    (conn,) = run(c, path)
    assert conn.keepalive_probes.client == 2 and conn.close == "none"
    assert conn.keepalive is not None
    assert conn.keepalive.first_after_idle_s == pytest.approx(15.04)
    assert conn.keepalive.interval_s == pytest.approx(15.001)
    assert any("server answered 2 probes" in n for n in conn.notes)
    assert conn.keepalive.run_probes == 0 and conn.keepalive.run_from is None
    agrees_with_tshark(path, [conn])


def test_keepalive_answered_then_not(tmp_path: Path) -> None:
    """Two probes answered, then three not: the last run counts from the peer's last answer,
    and its interval is the run's own (not a median over answered and unanswered gaps)."""
    c = Conv()
    c.handshake()
    c.data("c", 10)
    c.ack("s", dt=0.001)
    c.keepalive("c", dt=1.0)
    c.ack("s", dt=0.001)
    c.keepalive("c", dt=1.0)
    answer = c.ack("s", dt=0.001)
    unanswered = [c.keepalive("c", dt=1.024) for _ in range(3)]
    c.rst("c", dt=1.024)
    path = tmp_path / "ka-then-cut.pcap"
    (conn,) = run(c, path)
    assert conn.keepalive is not None and conn.keepalive_probes.client == 5
    assert conn.keepalive.run_probes == 3 and conn.keepalive.run_from == pytest.approx(c.segs[answer - 1].t)
    assert conn.keepalive.interval_s == pytest.approx(1.024)
    assert conn.keepalive_answered.client == 2
    assert frames(conn.keepalive_frames.client)[-3:] == unanswered
    assert any("server answered 2 probes, then not the last 3 (every 1.024 s)" in n for n in conn.notes)
    assert "RST from client after 3 unanswered keep-alive probes (keepalive failure)" in conn.notes
    agrees_with_tshark(path, [conn])


def test_zero_window_and_its_probes(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 1000)
    zw = [c.ack("s", win=0)]
    linux_probe = c.keepalive("c", dt=0.2)  # Linux probes at snd_una - 1 with no data
    zw.append(c.ack("s", win=0))
    acked = c.nxt["c"]
    c.send("c", "PA", 1, dt=0.4)  # a one-byte zero-window probe, not accepted
    c.nxt["c"] -= 1
    zw.append(c.ack("s", win=0, ack=acked))
    c.ack("s", dt=0.5, ack=acked)  # the window opens
    c.data("c", 500)
    c.ack("s")
    path = tmp_path / "zw.pcap"
    (conn,) = run(c, path)
    assert conn.zero_window.server == 3 and frames(conn.zero_window_frames.server) == zw
    assert frames(conn.keepalive_frames.client) == [linux_probe]
    assert "server advertised a zero window 3 times" in conn.notes
    assert any("zero-window probes" in n for n in conn.notes)
    # The probe was answered, by a zero-window ACK: not "never answered".
    assert any("server answered 1 probe" in n for n in conn.notes)
    assert not any("never answered" in n for n in conn.notes)
    agrees_with_tshark(path, [conn])


def test_probes_that_back_off_are_told_by_their_gaps_not_one_interval(tmp_path: Path) -> None:
    (conn,) = run(zero_window_backoff(), tmp_path / "zw-backoff.pcap")
    (text,) = [n for n in conn.notes if "keep-alive probes, the first after" in n]
    assert "then at gaps of 0.477, 0.961, 1.885 s" in text and "every" not in text
    # Even gaps (one timer's interval, with jitter) still read as "every".
    c = Conv()
    c.handshake()
    c.data("c", 10)
    c.ack("s", dt=0.001)
    for gap in (2.0, 1.0, 1.02, 0.99):
        c.keepalive("c", dt=gap)
    (even,) = run(c, tmp_path / "ka-even.pcap")
    assert any("the first after 2 s idle, then every 1 s;" in n for n in even.notes), even.notes


def test_probes_never_answered_are_said_so(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 10)
    c.ack("s", dt=0.001)
    for _ in range(3):
        c.keepalive("c", dt=1.0)
    (conn,) = run(c, tmp_path / "ka-silent.pcap")
    assert any("server never answered" in n for n in conn.notes)


def test_evidence_is_capped_counts_are_not(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    for _ in range(150):
        c.keepalive("c", dt=1.0)
    path = tmp_path / "many.pcap"
    (conn,) = run(c, path)
    assert conn.keepalive_probes.client == 150
    assert len(conn.keepalive_frames.client) == MAX_EVIDENCE
    assert conn.keepalive and conn.keepalive.interval_s == pytest.approx(1.0)
    if not tshark():
        pytest.skip("tshark is not installed: cannot compare with Wireshark")
    assert len(tshark_fields(path, ["frame.number"], "tcp.analysis.keep_alive")) == 150


# ---------------------------------------------------------------------------
# Connections


def test_reboot_is_one_connection(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 100)
    c.ack("s")
    data = c.data("c", 100, dt=60.0)  # the server rebooted meanwhile (same IP and MAC)
    rst = c.rst("s", dt=0.001, with_ack=False)  # no socket: RST with seq = the client's ACK
    path = tmp_path / "reboot.pcap"
    conns = run(c, path)
    assert len(conns) == 1
    (conn,) = conns
    assert (conn.handshake, conn.close, conn.rst_from) == ("complete", "rst", "server")
    assert frames(conn.rsts.server) == [rst]
    assert conn.oldest_unacked and conn.oldest_unacked.frame == data
    assert any("no longer had this connection" in n for n in conn.notes)
    agrees_with_tshark(path, conns)


def test_two_interleaved_connections(tmp_path: Path) -> None:
    shared: list[Seg] = []
    a = Conv(client=("10.0.0.1", 40001), segs=shared)
    b = Conv(client=("10.0.0.3", 40002), t=T0 + 0.0005, segs=shared)
    a.send("c", "S")
    b.send("c", "S")
    a.send("s", "SA", dt=0.001)
    b.send("s", "SA", dt=0.001)
    a.ack("c")
    b.ack("c")
    b.rst("s")
    a.fin("c")
    a.send("s", "FA", dt=0.001)
    a.ack("c")
    shared.sort(key=lambda s: s.t)
    path = tmp_path / "two.pcap"
    write_fast(path, shared)
    conns = analyze(read_tcp(path))
    assert [(x.client, x.close) for x in conns] == [("10.0.0.1:40001", "fin"), ("10.0.0.3:40002", "rst")]
    assert [x.stream for x in conns] == [0, 1]
    agrees_with_tshark(path, conns)


def test_reused_tuple_after_close_is_a_new_connection(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.fin("c")
    c.send("s", "FA", dt=0.001)
    c.ack("c")
    again = Conv(t=c.t + 5, isn=(7777, 9999), segs=c.segs)
    again.send("c", "S")
    again.send("c", "S", dt=1.0, seq=7777)  # a retransmitted SYN stays in the new connection
    again.send("s", "SA", dt=0.001)
    again.ack("c")
    again.rst("c")
    path = tmp_path / "reuse.pcap"
    conns = run(c, path)
    assert [(x.close, x.handshake) for x in conns] == [("fin", "complete"), ("rst", "complete")]
    assert conns[1].retransmissions.client == 1 and conns[1].syn and conns[1].syn.frame == 7
    agrees_with_tshark(path, conns)


def test_no_handshake_captured_picks_the_ephemeral_port_as_client(tmp_path: Path) -> None:
    c = Conv()
    c.data("s", 100)  # the capture starts mid-connection, with the server talking
    c.ack("c")
    path = tmp_path / "mid.pcap"
    (conn,) = run(c, path)
    assert (conn.client, conn.server, conn.handshake) == ("10.0.0.1:40000", "10.0.0.2:80", "missing")
    assert conn.syn is None
    agrees_with_tshark(path, [conn])


@pytest.mark.parametrize(("link", "fmt"), [("sll2", "pcap"), ("ether", "pcapng")])
def test_ipv6(tmp_path: Path, link: str, fmt: str) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 10)
    c.fin("c")
    c.send("s", "FA", dt=0.001)
    c.ack("c")
    path = tmp_path / f"v6.{fmt}"
    (conn,) = run(c, path, link=link, fmt=fmt, v6=True)
    assert conn.client == "[2001:db8::a:0:0:1]:40000" and conn.server == "[2001:db8::a:0:0:2]:80"
    assert (conn.handshake, conn.close, conn.close_packets) == ("complete", "fin", 3)
    agrees_with_tshark(path, [conn])


def test_merged_captures_order_by_stream_not_frame_number(tmp_path: Path) -> None:
    """Each host's own sends, from its own capture, merged by time: frame numbers of
    different files do not compare, so the server's first FIN must still be seen first."""
    c = Conv()
    c.handshake()
    c.data("c", 100)
    c.ack("s")
    server_fin = c.fin("s")
    c.send("c", "FA", dt=0.001)
    c.ack("s")
    client_file = c.write(tmp_path / "client.pcap")
    # The server's capture holds more frames first, so its frame numbers are all higher.
    busy = Conv(client=("10.9.9.9", 5555), t=T0 - 1)
    for _ in range(40):
        busy.ack("c", dt=0.0001)
    server_file = tmp_path / "server.pcap"
    write_fast(server_file, sorted(busy.segs + c.segs, key=lambda s: s.t))

    def sent_by(path: Path, address: str) -> Iterator[TcpPacket]:
        return (p for p in read_tcp(path) if p.src == address)

    merged = heapq.merge(
        sent_by(client_file, "10.0.0.1"), sent_by(server_file, "10.0.0.2"), key=lambda p: p.time_ns
    )
    (conn,) = analyze(merged)
    assert (conn.close, conn.initiator, conn.close_packets) == ("fin", "server", 3)
    assert [r.file for r in conn.fins.server] == ["server.pcap"]
    assert [r.file for r in conn.fins.client] == ["client.pcap"]
    assert conn.fins.server[0].frame == server_fin + 40
    assert conn.handshake == "complete"


def test_simultaneous_open_in_merged_captures(tmp_path: Path) -> None:
    """Both sides send a SYN; the client is the one whose SYN came first in time, even when
    its capture numbers that frame higher."""
    c = Conv(client=("10.0.0.1", 7000), server=("10.0.0.2", 7000))
    c.send("s", "S")
    c.send("c", "S", dt=0.0001)
    c.send("s", "SA", dt=0.001, seq=c.isn[1])
    c.send("c", "SA", dt=0.0001, seq=c.isn[0])
    server_file = tmp_path / "server.pcap"
    busy = Conv(client=("10.9.9.9", 5555), t=T0 - 1)
    for _ in range(10):
        busy.ack("c", dt=0.0001)
    write_fast(server_file, sorted(busy.segs + c.segs, key=lambda s: s.t))
    client_file = c.write(tmp_path / "client.pcap")
    merged = heapq.merge(
        (p for p in read_tcp(server_file) if p.src == "10.0.0.2"),
        (p for p in read_tcp(client_file) if p.src == "10.0.0.1"),
        key=lambda p: p.time_ns,
    )
    (conn,) = analyze(merged)
    assert conn.client == "10.0.0.2:7000" and conn.syn is not None and conn.syn.file == "server.pcap"


def test_analyze_file_reports_the_reader(tmp_path: Path) -> None:
    c = Conv()
    c.handshake()
    c.data("c", 100)
    whole = c.write(tmp_path / "w.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[:-10])
    result = analyze_file(cut)
    assert result.truncated and result.packets == 3 and result.tcp_packets == 3
    assert result.problems and "cut.pcap" in result.problems[0]
    assert len(result.connections) == 1 and result.connections[0].handshake == "complete"
    assert result.linktypes == [1]


def _one_sided(n: int) -> Iterator[TcpPacket]:
    """Data from one side only, never acknowledged (the other direction was not captured)."""
    for k in range(n):
        t = T0 + k * 0.001
        yield TcpPacket(
            k + 1, t, "10.0.0.1", 40000, "10.0.0.2", 80, 1 + 100 * k, 1, 0x18, 1000, 100, "x", round(t * 1e9)
        )


def _peak(n: int) -> tuple[ConnectionSummary, int]:
    tracemalloc.start()
    try:
        (conn,) = analyze(_one_sided(n))
        return conn, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_when_nothing_is_acknowledged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "MAX_UNACKED", 200)
    small, small_peak = _peak(2_000)
    big, big_peak = _peak(8_000)
    assert big.packets == 8_000
    assert small.oldest_unacked and small.oldest_unacked.frame == 1
    assert big.oldest_unacked and big.oldest_unacked.frame == 1  # the oldest is the one kept
    assert big_peak < small_peak + 50_000  # 6,000 more packets, no more memory


# ---------------------------------------------------------------------------
# Many odd conversations at once: the per-frame flags must be Wireshark's.


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_conversations_agree_with_tshark(tmp_path: Path, seed: int) -> None:
    path = random_capture(tmp_path / "random.pcap", seed, 120)
    conns = analyze(read_tcp(path))
    assert len(conns) > 100
    assert sum(c.retransmissions.client + c.retransmissions.server for c in conns) > 100
    assert sum(c.keepalive_probes.client + c.keepalive_probes.server for c in conns) > 100
    agrees_with_tshark(path, conns)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_conversations_agree_with_tshark_hypothesis(tmp_path: Path, seed: int) -> None:
    path = random_capture(tmp_path / f"h{seed}.pcap", seed, 30)
    agrees_with_tshark(path, analyze(read_tcp(path)))
