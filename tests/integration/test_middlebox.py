"""The middlebox, loss and IPv6 scenarios on the engine. Beyond the verdict, each test reads
the raw captures itself: the router's per-network captures prove where the packets died
(in the sender's capture and the router's inbound one, never in its outbound one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.pcap.reader import RST, TcpPacket, read_tcp
from tests.integration.conftest import CliRun, tshark_frames
from tests.integration.test_scenarios import addresses, retransmitted

pytestmark = pytest.mark.engine


def data(pcap: Path, src: str | None = None, after: float = 0.0) -> list[TcpPacket]:
    return [
        p for p in read_tcp(pcap) if p.payload_len > 0 and (src is None or p.src == src) and p.time >= after
    ]


def t0(r: CliRun) -> float:
    return float(r.verdict()["t0"])


def test_nat_idle_timeout(run: Any) -> None:
    r = run("nat_idle_timeout")
    client, server = addresses(r)
    late = t0(r) + 12  # the NAT forgot the flow 10 s after the handshake; the client sends at 15 s
    sent = data(r.run_dir / "client.pcap", client, late)
    arrived = data(r.run_dir / "nat.inside.pcap", client, late)
    assert len(sent) >= 4 and len(arrived) >= 4  # the send and its retransmissions
    # What reached the router's inside interface was sent by the client, and none of it left.
    assert all(
        any(s.seq == a.seq and s.payload_len == a.payload_len and 0 <= a.time - s.time < 0.01 for s in sent)
        for a in arrived
    )
    assert data(r.run_dir / "nat.outside.pcap", None, late) == []
    assert data(r.run_dir / "server.pcap", None, late) == []
    v = r.verdict()
    nat = v["paths"]["routers"]["nat"]
    assert nat["died"] == len(arrived) and nat["forgot_at"] is not None
    assert nat["counters"]["forgotten"] >= nat["died"]  # nft's own count of the drops
    assert {f["network"] for f in nat["died_frames"]} == {"inside"}
    assert v["apps"]["client"]["sees"] == "ETIMEDOUT"
    # One connection, although the server only ever saw the router's address.
    assert v["connection"]["handshake"] == "complete" and v["paths"]["joined"]
    assert server in v["connection"]["server"]
    assert "ESTAB" in (r.run_dir / "server.ss.txt").read_text()
    # The server's kernel is asked by its own names (its peer is the router's address).
    server_side = v["sockets"]["connections"][0]["sides"]["server"]
    assert server_side["samples"] > 0 and server_side["end"] == "ESTAB"
    assert not [n for n in v["notes"] if "never listed" in n], v["notes"]


def test_nat_linux_default(run: Any) -> None:
    r = run("nat_linux_default")
    _, server = addresses(r)
    late = t0(r) + 12
    # The late data left the router with the same source port as the handshake had.
    outside = [p for p in read_tcp(r.run_dir / "nat.outside.pcap") if p.dst == server]
    assert len({p.sport for p in outside}) == 1
    assert data(r.run_dir / "nat.outside.pcap", None, late)
    log = (r.run_dir / "nat.conntrack.log").read_text()
    assert "[DESTROY]" in log and log.count("[NEW]") >= 2
    nat = r.verdict()["paths"]["routers"]["nat"]
    assert (nat["died"], nat["same_port"]) == (0, True)
    assert nat["picked_up_at"] >= nat["forgot_at"]
    assert r.verdict()["connection"]["close"] == "fin"


def test_nat_keepalive_saves(run: Any) -> None:
    r = run("nat_keepalive_saves")
    _, server = addresses(r)
    # The probes crossed the NAT (they are in its outside capture), so its entry never expired.
    probes = [p for p in read_tcp(r.run_dir / "nat.outside.pcap") if p.dst == server and p.payload_len == 0]
    assert len(probes) >= 3  # the handshake's ACK and at least two keepalive probes
    log = (r.run_dir / "nat.conntrack.log").read_text()
    assert "[NEW]" in log and "[DESTROY]" not in log
    # The send after 15 s idle crossed the NAT and reached the server.
    assert data(r.run_dir / "server.pcap", None, t0(r) + 14)
    assert r.verdict()["connection"]["keepalive_probes"]["client"] >= 2


def test_lb_idle_reset(run: Any) -> None:
    r = run("lb_idle_reset")
    client, server = addresses(r)
    # Each end received an RST that its peer never sent: it left the router, never entered it.
    to_client = [p for p in read_tcp(r.run_dir / "lb.inside.pcap") if p.flags & RST and p.dst == client]
    to_server = [p for p in read_tcp(r.run_dir / "lb.outside.pcap") if p.flags & RST and p.dst == server]
    assert len(to_client) == len(to_server) == 1
    assert not [p for p in read_tcp(r.run_dir / "server.pcap") if p.flags & RST and p.src == server]
    assert not [p for p in read_tcp(r.run_dir / "client.pcap") if p.flags & RST and p.src == client]
    forged = [json.loads(line) for line in (r.run_dir / "lb.middlebox.jsonl").read_text().splitlines()]
    assert sum(1 for e in forged if e["event"] == "forged") == 2
    v = r.verdict()
    assert {v["apps"][h]["sees"] for h in ("client", "server")} == {"ECONNRESET"}
    assert v["paths"]["routers"]["lb"]["forged"] == 2


def test_loss_bulk(run: Any) -> None:
    r = run("loss_bulk")
    client, _ = addresses(r)
    v = r.verdict()
    # The verdict counts what Wireshark counts (tshark itself, on the client's own capture)...
    assert v["connection"]["retransmissions"]["client"] == len(
        retransmitted(r.run_dir / "client.pcap", client)
    )
    # ...and the kernel's counter, which sees many more (tshark calls most of them out-of-order).
    checks = r.checks()
    kernel = int(checks["kernel_counters.client.RetransSegs"]["observed"])
    assert kernel >= v["connection"]["retransmissions"]["client"]
    assert int(checks["kernel_counters.client.TCPFastRetrans"]["observed"]) >= 3


def test_power_cut_v6(run: Any) -> None:
    r = run("power_cut_v6")
    client, _ = addresses(r)
    assert ":" in client
    wireshark = tshark_frames(r.run_dir / "client.pcap", f"tcp.analysis.retransmission && ipv6.src=={client}")
    assert len(wireshark) == r.verdict()["connection"]["retransmissions"]["client"] >= 4
    assert r.verdict()["apps"]["client"]["sees"] == "ETIMEDOUT"
    assert r.verdict()["connection"]["client"].startswith("[")


def test_reboot_rst_v6(run: Any) -> None:
    r = run("reboot_rst_v6")
    _, server = addresses(r)
    assert not [p for p in read_tcp(r.run_dir / "server.pcap") if p.src == server and p.flags & RST]
    assert [p for p in read_tcp(r.run_dir / "server.boot2.pcap") if p.src == server and p.flags & RST]
    assert r.verdict()["apps"]["client"]["sees"] == "ECONNRESET"


def test_rst_injection(run: Any) -> None:
    r = run("rst_injection")
    _, server = addresses(r)
    forged = [p for p in read_tcp(r.run_dir / "path.outside.pcap") if p.flags & RST and p.dst == server]
    assert len(forged) >= 2
    in_window, exact = forged[0], forged[1]
    # Right after the in-window RST, the server's kernel sent a bare ACK (the challenge ACK)...
    after = [p for p in read_tcp(r.run_dir / "server.pcap") if p.src == server and p.time > in_window.time]
    assert after and after[0].payload_len == 0 and not after[0].flags & RST
    assert after[0].time - in_window.time < 0.01
    # ...carrying the sequence number it expected: 1000 short of the forged one's.
    assert (in_window.seq - after[0].ack) % 2**32 == 1000
    assert exact.time > in_window.time
    v = r.verdict()
    assert r.checks()["challenge_acks.server"]["passed"]
    assert {v["apps"][h]["sees"] for h in ("client", "server")} == {"ECONNRESET"}
