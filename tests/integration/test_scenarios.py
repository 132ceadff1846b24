"""Every shipped scenario, end to end on the engine through the real CLI. Beyond the exit code,
each test reads the verdict's facts (computed from the pcaps) and, where it can, checks them
against the raw pcaps and tshark."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.pcap.reader import FIN, RST, SYN, read_tcp
from tests.integration.conftest import ROOT, CliRun, scenario_names, tcpscen, tshark_count

pytestmark = pytest.mark.engine


def addresses(r: CliRun) -> tuple[str, str]:
    """The client's and the server's address as the run really had them (a run moves to a free
    subnet when its own is taken, as by a parallel run)."""
    hosts = {
        h["name"]: h["address"] for h in json.loads((r.run_dir / "report-input.json").read_text())["hosts"]
    }
    return hosts["client"], hosts["server"]


def flags_from(pcap: Path, src: str, flag: int) -> list[int]:
    return [p.frame for p in read_tcp(pcap) if p.src == src and p.flags & flag]


def retransmitted(pcap: Path, src: str) -> list[int]:
    """The frames Wireshark calls retransmissions, from `src` (tshark itself, not our engine)."""
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed: `make test` installs it (scripts/setup-host.sh)")
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-Y",
            f"tcp.analysis.retransmission && ip.src=={src}",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(n) for n in out.split()]


def test_every_scenario_has_a_test() -> None:
    shipped = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    # Here or in another engine test module (test_middlebox.py): def test_<scenario>(.
    tested = {
        m.group(1)
        for module in Path(__file__).parent.glob("test_*.py")
        for m in re.finditer(r"^def test_(\w+)\(", module.read_text(), flags=re.M)
    }
    assert shipped <= tested, shipped - tested


def test_normal_close(run: Any) -> None:
    r = run("normal_close")
    client_ip = addresses(r)[0]
    conn = r.verdict()["connection"]
    assert (conn["close"], conn["initiator"]) == ("fin", "client")
    assert conn["close_packets"] in (3, 4)
    assert {k: v["sees"] for k, v in r.verdict()["apps"].items()} == {"server": "eof", "client": "eof"}
    # The capture was ready before the first SYN, on both sides.
    assert flags_from(r.run_dir / "client.pcap", client_ip, SYN)
    assert flags_from(r.run_dir / "server.pcap", client_ip, SYN)


def test_server_close(run: Any) -> None:
    r = run("server_close")
    conn = r.verdict()["connection"]
    assert (conn["close"], conn["initiator"]) == ("fin", "server")
    assert r.verdict()["apps"]["client"]["sees"] == "eof"


def test_kill9_server(run: Any) -> None:
    r = run("kill9_server")
    conn = r.verdict()["connection"]
    assert (conn["close"], conn["initiator"], conn["rst_from"]) == ("fin", "server", None)
    kill = r.verdict()["faults"][0]
    fin = conn["fins"]["server"][0]
    assert fin["time"] >= kill["t"], "the FIN came from the kernel after the app was killed"
    assert r.verdict()["apps"]["client"]["sees"] == "eof"


def test_kill9_unread_rst(run: Any) -> None:
    r = run("kill9_unread_rst")
    server_ip = addresses(r)[1]
    conn = r.verdict()["connection"]
    assert (conn["close"], conn["rst_from"]) == ("rst", "server")
    assert flags_from(r.run_dir / "server.pcap", server_ip, RST)
    assert not flags_from(r.run_dir / "server.pcap", server_ip, FIN)
    assert r.verdict()["apps"]["client"]["sees"] == "ECONNRESET"


def test_power_cut(run: Any) -> None:
    r = run("power_cut")
    client_ip, server_ip = addresses(r)
    v = r.verdict()
    conn = v["connection"]
    assert conn["client"].startswith(client_ip + ":") and conn["server"] == f"{server_ip}:7000"
    assert (conn["close"], conn["rst_from"]) == ("none", None)
    assert not flags_from(r.run_dir / "client.pcap", client_ip, FIN | RST)
    assert conn["retransmissions"]["client"] >= 4
    gaps = conn["backoff_gaps_s"]
    assert all(1.6 < b / a < 2.4 for a, b in itertools.pairwise(gaps[1:])), gaps
    assert v["apps"]["client"]["sees"] == "ETIMEDOUT"
    # The budget counts from the timer's first retransmission (the prediction's start is one),
    # and the abort is the first expiry at or past it: one doubled RTO after the last one sent.
    start = v["predictions"]["client"]["from"]
    assert start["frame"] in retransmitted(r.run_dir / "client.pcap", client_ip)
    took = v["apps"]["client"]["t"] - start["time"]
    last = max(p.time for p in read_tcp(r.run_dir / "client.pcap") if p.src == client_ip)
    assert 12.6 <= took <= 12.6 + 2 * gaps[-1] * 1.15, took
    assert v["apps"]["client"]["t"] - last == pytest.approx(2 * gaps[-1], rel=0.15)
    ours = conn["retransmissions"]["client"]
    assert ours == tshark_count(
        r.run_dir / "client.pcap", f"tcp.analysis.retransmission && ip.src=={client_ip}"
    )


def test_rto_ceiling(run: Any) -> None:
    """tcp_rto_max_ms=1000: the gaps double to 1 s and stay there, and ETIMEDOUT comes after
    tcp_model_timeout(6) with 1 s linear steps (5.4 s), at the first expiry past it."""
    if not Path("/proc/sys/net/ipv4/tcp_rto_max_ms").exists():
        pytest.skip("tcp_rto_max_ms needs a kernel from 6.15")
    r = run("rto_ceiling")
    client_ip, _ = addresses(r)
    v = r.verdict()
    gaps = v["connection"]["backoff_gaps_s"]
    assert max(gaps) < 1.2 and sum(1 for g in gaps if 0.95 < g < 1.2) >= 2, gaps
    assert v["apps"]["client"]["sees"] == "ETIMEDOUT"
    start = v["predictions"]["client"]["from"]
    assert start["frame"] in retransmitted(r.run_dir / "client.pcap", client_ip)
    took = v["apps"]["client"]["t"] - start["time"]
    assert 5.4 <= took <= 5.4 + 1.2 * 1.15, took  # not 25.4 s: the default ceiling's budget


def test_frozen_then_gone(run: Any) -> None:
    """A zero window, then silence: tcp_retries2=3 unanswered zero-window probes, then ETIMEDOUT
    at the probe timer's next expiry, nothing sent; the model's kind says which abort it was."""
    r = run("frozen_then_gone")
    client_ip, server_ip = addresses(r)
    v = r.verdict()
    assert v["connection"]["zero_window"]["server"] == tshark_count(
        r.run_dir / "server.pcap", f"tcp.analysis.zero_window && ip.src=={server_ip}"
    )
    p = v["predictions"]["client"]
    assert p["kind"] == "zerowindow-abort" and v["apps"]["client"]["sees"] == "ETIMEDOUT"
    probes = [
        q
        for q in read_tcp(r.run_dir / "client.pcap")
        if q.src == client_ip
        and q.payload_len == 0
        and not q.flags & (FIN | RST | SYN)
        and q.time >= p["from"]["time"]
    ]
    assert probes and probes[0].frame == p["from"]["frame"]
    took = v["apps"]["client"]["t"] - p["from"]["time"]
    assert took == pytest.approx(p["predicted_s"], rel=0.10)
    assert not flags_from(r.run_dir / "client.pcap", client_ip, FIN | RST)


def test_connect_timeout(run: Any) -> None:
    r = run("connect_timeout")
    client_ip, server_ip = addresses(r)
    v = r.verdict()
    conn = v["connection"]
    syns = [p for p in read_tcp(r.run_dir / "client.pcap") if p.src == client_ip and p.flags & SYN]
    assert len(syns) == 6 and not flags_from(r.run_dir / "client.pcap", server_ip, SYN)  # no SYN-ACK
    assert all(0.95 < b.time - a.time < 1.15 for a, b in itertools.pairwise(syns)), syns  # linear: 1 s
    assert v["faults"][0]["t_done"] < syns[0].time  # the blackhole was in place before the first SYN
    (p,) = v["predictions"].values()
    assert (p["kind"], p["predicted_s"], p["from"]["frame"]) == ("connect-timeout", 7.0, syns[0].frame)
    assert v["apps"]["client"]["sees"] == "ETIMEDOUT"
    assert v["apps"]["client"]["t"] - syns[0].time == pytest.approx(7.0, rel=0.05)  # measured: 7.13 s
    assert conn["retransmissions"]["client"] == len(retransmitted(r.run_dir / "client.pcap", client_ip)) == 5


def test_keepalive_on_cut(run: Any) -> None:
    r = run("keepalive_on_cut")
    client_ip = addresses(r)[0]
    conn = r.verdict()["connection"]
    assert conn["keepalive_probes"]["client"] == 3
    assert conn["keepalive"]["first_after_idle_s"] == pytest.approx(2.0, rel=0.1)
    assert conn["keepalive"]["interval_s"] == pytest.approx(1.0, rel=0.1)
    assert conn["rst_from"] == "client"
    assert tshark_count(r.run_dir / "client.pcap", f"tcp.analysis.keep_alive && ip.src=={client_ip}") == 3
    assert r.verdict()["apps"]["client"]["sees"] == "ETIMEDOUT"


def test_keepalive_off_cut(run: Any) -> None:
    r = run("keepalive_off_cut")
    checks = r.checks()
    assert checks["packets_after_fault"]["observed"] == "0"
    assert checks["socket_at_end.client"]["observed"] == "ESTAB"
    assert "ESTAB" in (r.run_dir / "client.ss.txt").read_text()
    assert r.verdict()["apps"]["client"]["sees"] == "nothing"


def test_reboot_rst(run: Any) -> None:
    r = run("reboot_rst")
    server_ip = addresses(r)[1]
    conn = r.verdict()["connection"]
    assert (conn["close"], conn["rst_from"]) == ("rst", "server")
    # Nothing escaped at power-off: the first boot's capture has no FIN or RST from the server.
    assert not flags_from(r.run_dir / "server.pcap", server_ip, FIN | RST)
    assert flags_from(r.run_dir / "server.boot2.pcap", server_ip, RST)
    assert r.verdict()["apps"]["client"]["sees"] == "ECONNRESET"


def test_a_power_on_is_in_effect_when_its_cables_go_in_not_when_its_app_is_ready(run: Any) -> None:
    # The fresh kernel answers from the moment its cables are in, while its app still starts:
    # a redis-server power-cycled was recorded "power on at +5.026 s", after its new kernel's RST
    # at +4.887 s and its app's listen at +4.925 s.
    r = run("reboot_rst")
    assert r.run_dir is not None
    notes = [json.loads(line) for line in (r.run_dir / "timeline.jsonl").read_text().splitlines()]
    (on,) = [n for n in notes if n.get("fault") == "power_on"]
    events = [json.loads(line) for line in (r.run_dir / "server.events.jsonl").read_text().splitlines()]
    listening = [e["t"] for e in events if e["event"] == "listening"]
    assert len(listening) == 2, events  # one per boot
    assert on["t"] < on["t_done"] < listening[1], (on, listening)
    # Every packet of the new kernel's capture comes after its cables went in.
    assert min(p.time for p in read_tcp(r.run_dir / "server.boot2.pcap")) >= on["t_done"] - 0.005


def test_go_keepalive_period(run: Any) -> None:
    r = run("go_keepalive_period")
    conn = r.verdict()["connection"]
    assert conn["keepalive_probes"]["client"] == 3
    assert conn["keepalive"]["first_after_idle_s"] == pytest.approx(2.0, rel=0.1)
    assert conn["keepalive"]["interval_s"] == pytest.approx(2.0, rel=0.1)
    took = r.verdict()["apps"]["client"]["t"] - r.verdict()["predictions"]["client"]["from"]["time"]
    assert took == pytest.approx(2 + 3 * 2, rel=0.1)


def test_pause_is_not_a_cut(run: Any) -> None:
    r = run("pause_is_not_a_cut")
    server_ip = addresses(r)[1]
    conn = r.verdict()["connection"]
    assert conn["zero_window"]["server"] >= 1
    assert conn["zero_window"]["server"] == tshark_count(
        r.run_dir / "server.pcap", f"tcp.analysis.zero_window && ip.src=={server_ip}"
    )
    assert conn["close"] == "fin" and conn["rst_from"] is None
    lines = (r.run_dir / "client.events.jsonl").read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert "blocked" in events and "unblocked" in events and "error" not in events


def test_failing_expectation_exits_1(runs_root: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "normal_close_wrong.yaml"
    wrong.write_text(
        (ROOT / "scenarios/normal_close.yaml").read_text().replace("  close: fin\n", "  close: rst\n")
    )
    result = tcpscen("run", wrong, runs_dir=runs_root / "wrong")
    assert result.code == 1, result.stdout + result.stderr
    close = result.checks()["close"]
    assert close["passed"] is False and close["observed"] == "fin"
    assert all(c["passed"] for name, c in result.checks().items() if name != "close")


def test_blackhole_one_way(run: Callable[[str], CliRun]) -> None:
    r = run("blackhole_one_way")
    server_ip = addresses(r)[1]
    conn = r.verdict()["connection"]
    assert conn["retransmissions"]["client"] >= 4
    # The server's ACKs left the server (its own capture shows them) and never reached the client.
    blackholed_at = r.verdict()["faults"][0]["t_done"]
    server_acks = [
        p for p in read_tcp(r.run_dir / "server.pcap") if p.src == server_ip and p.time > blackholed_at
    ]
    client_got = [
        p for p in read_tcp(r.run_dir / "client.pcap") if p.src == server_ip and p.time > blackholed_at
    ]
    assert server_acks and not client_got
    assert r.verdict()["apps"]["client"]["sees"] == "ETIMEDOUT"


def test_middlebox_reject(run: Callable[[str], CliRun]) -> None:
    r = run("middlebox_reject")
    conn = r.verdict()["connection"]
    assert (conn["close"], conn["rst_from"]) == ("rst", "server")
    apps = r.verdict()["apps"]
    assert apps["client"]["sees"] == "ECONNRESET" and apps["server"]["sees"] == "nothing"
    # The server's socket never learnt: it is still ESTABLISHED in its kernel at the end.
    assert "ESTAB" in (r.run_dir / "server.ss.txt").read_text()


@pytest.mark.parametrize("name", scenario_names())
def test_every_run_directory_has_its_reports(name: str, run: Callable[[str], CliRun]) -> None:
    r = run(name)
    html = (r.run_dir / "report.html").read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "")
    cases = ET.parse(r.run_dir / "junit.xml").getroot().iter("testcase")
    assert len(list(cases)) == len(r.verdict()["checks"])
    annotated = sorted(r.run_dir.glob("*.annotated.pcapng"))
    assert annotated, "each side's capture gets an annotated copy"
    if r.verdict()["faults"]:
        comments = sum(tshark_count(p, "frame.comment") for p in annotated)
        assert comments >= 1, "the faults appear as packet comments"


def test_pool_close_wait(run: Any) -> None:
    r = run("pool_close_wait")
    v = r.verdict()
    client_ip, server_ip = addresses(r)
    conns = v["connections"]
    assert len(conns) == 8 and all(c["hosts"] == {"client": "client", "server": "server"} for c in conns)
    packets = list(read_tcp(r.run_dir / "client.pcap"))
    restart = next(f for f in v["faults"] if f["fault"] == "restart")
    for c in conns:
        port = int(c["client"].rsplit(":", 1)[1])
        mine = [p for p in packets if port in (p.sport, p.dport)]
        fin = next(p for p in mine if p.src == server_ip and p.flags & FIN)  # the restarted server's kernel
        reuse = next(p for p in mine if p.src == client_ip and p.payload_len and p.time > fin.time)
        rst = next(p for p in mine if p.src == server_ip and p.flags & RST)
        assert restart["t"] <= fin.time < reuse.time < rst.time  # FIN, the idle pool, the reuse, the RST
        # Between the FIN and the reuse the client sent no FIN of its own: CLOSE-WAIT, unnoticed.
        assert not [p for p in mine if p.src == client_ip and p.flags & FIN and p.time < reuse.time]
    assert v["apps"]["client"]["sees"] == "EPIPE"


def test_many_clients_power_cut(run: Any) -> None:
    r = run("many_clients_power_cut")
    v = r.verdict()
    by_client = {c["hosts"]["client"]: c for c in v["connections"]}
    assert set(by_client) == {"plain", "keepalive", "timeout"}
    kinds = {host: [p["kind"] for p in c["predictions"]] for host, c in by_client.items()}
    assert kinds == {"plain": ["rto-abort"], "keepalive": ["keepalive-abort"], "timeout": ["rto-abort"]}
    plain = by_client["plain"]["predictions"][0]
    assert plain["beyond_capture"] and plain["observed_s"] is None  # still retransmitting at the end
    assert v["apps"]["plain"]["sees"] == "nothing"
    for host, seconds in (("keepalive", 5.0), ("timeout", 3.0)):
        p = v["predictions"][host]
        assert p["predicted_s"] == seconds
        assert v["apps"][host]["sees"] == "ETIMEDOUT"
        assert v["apps"][host]["t"] - p["from"]["time"] == pytest.approx(seconds, rel=0.15)
