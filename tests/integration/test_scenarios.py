"""Every shipped scenario, end to end on the engine through the real CLI. Beyond the exit code,
each test reads the verdict's facts (computed from the pcaps) and, where it can, checks them
against the raw pcaps and tshark."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.pcap.reader import FIN, RST, SYN, read_tcp
from tests.integration.conftest import ROOT, CliRun, tcpscen, tshark_count

pytestmark = pytest.mark.engine

CLIENT_IP, SERVER_IP = "10.77.0.20", "10.77.0.10"


@pytest.fixture
def run(scenario_run: Callable[[str], CliRun]) -> Callable[[str], CliRun]:
    def go(name: str) -> CliRun:
        result = scenario_run(name)
        assert result.code == 0, result.stdout + result.stderr
        return result

    return go


def flags_from(pcap: Path, src: str, flag: int) -> list[int]:
    return [p.frame for p in read_tcp(pcap) if p.src == src and p.flags & flag]


def test_every_scenario_has_a_test() -> None:
    from tests.integration import test_programs  # noqa: PLC0415 - the scenarios of users' programs

    shipped = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    names = [*globals(), *vars(test_programs)]
    tested = {name.removeprefix("test_") for name in names if name.startswith("test_")}
    assert shipped <= tested, shipped - tested


def test_normal_close(run: Any) -> None:
    r = run("normal_close")
    conn = r.verdict()["connection"]
    assert (conn["close"], conn["initiator"]) == ("fin", "client")
    assert conn["close_packets"] in (3, 4)
    assert {k: v["sees"] for k, v in r.verdict()["apps"].items()} == {"server": "eof", "client": "eof"}
    # The capture was ready before the first SYN, on both sides.
    assert flags_from(r.run_dir / "client.pcap", CLIENT_IP, SYN)
    assert flags_from(r.run_dir / "server.pcap", CLIENT_IP, SYN)


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
    conn = r.verdict()["connection"]
    assert (conn["close"], conn["rst_from"]) == ("rst", "server")
    assert flags_from(r.run_dir / "server.pcap", SERVER_IP, RST)
    assert not flags_from(r.run_dir / "server.pcap", SERVER_IP, FIN)
    assert r.verdict()["apps"]["client"]["sees"] == "ECONNRESET"


def test_power_cut(run: Any) -> None:
    r = run("power_cut")
    v = r.verdict()
    conn = v["connection"]
    assert conn["client"].startswith(CLIENT_IP + ":") and conn["server"] == f"{SERVER_IP}:7000"
    assert (conn["close"], conn["rst_from"]) == ("none", None)
    assert not flags_from(r.run_dir / "client.pcap", CLIENT_IP, FIN | RST)
    assert conn["retransmissions"]["client"] >= 4
    gaps = conn["backoff_gaps_s"]
    assert all(1.6 < b / a < 2.4 for a, b in itertools.pairwise(gaps[1:])), gaps
    assert v["apps"]["client"]["sees"] == "ETIMEDOUT"
    # ETIMEDOUT within 10% of tcp_retries2=5's 12.6 s budget, counted from the first unacked send.
    took = v["apps"]["client"]["t"] - v["predictions"]["client"]["start"]["time"]
    assert 12.6 * 0.9 <= took <= 12.6 * 1.15, took
    ours = conn["retransmissions"]["client"]
    assert ours == tshark_count(
        r.run_dir / "client.pcap", f"tcp.analysis.retransmission && ip.src=={CLIENT_IP}"
    )


def test_keepalive_on_cut(run: Any) -> None:
    r = run("keepalive_on_cut")
    conn = r.verdict()["connection"]
    assert conn["keepalive_probes"]["client"] == 3
    assert conn["keepalive"]["first_after_idle_s"] == pytest.approx(2.0, rel=0.1)
    assert conn["keepalive"]["interval_s"] == pytest.approx(1.0, rel=0.1)
    assert conn["rst_from"] == "client"
    assert tshark_count(r.run_dir / "client.pcap", f"tcp.analysis.keep_alive && ip.src=={CLIENT_IP}") == 3
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
    conn = r.verdict()["connection"]
    assert (conn["close"], conn["rst_from"]) == ("rst", "server")
    # Nothing escaped at power-off: the first boot's capture has no FIN or RST from the server.
    assert not flags_from(r.run_dir / "server.pcap", SERVER_IP, FIN | RST)
    assert flags_from(r.run_dir / "server.boot2.pcap", SERVER_IP, RST)
    assert r.verdict()["apps"]["client"]["sees"] == "ECONNRESET"


def test_go_keepalive_period(run: Any) -> None:
    r = run("go_keepalive_period")
    conn = r.verdict()["connection"]
    assert conn["keepalive_probes"]["client"] == 3
    assert conn["keepalive"]["first_after_idle_s"] == pytest.approx(2.0, rel=0.1)
    assert conn["keepalive"]["interval_s"] == pytest.approx(2.0, rel=0.1)
    took = r.verdict()["apps"]["client"]["t"] - r.verdict()["predictions"]["client"]["start"]["time"]
    assert took == pytest.approx(2 + 3 * 2, rel=0.1)


def test_pause_is_not_a_cut(run: Any) -> None:
    r = run("pause_is_not_a_cut")
    conn = r.verdict()["connection"]
    assert conn["zero_window"]["server"] >= 1
    assert conn["zero_window"]["server"] == tshark_count(
        r.run_dir / "server.pcap", f"tcp.analysis.zero_window && ip.src=={SERVER_IP}"
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
    conn = r.verdict()["connection"]
    assert conn["retransmissions"]["client"] >= 4
    # The server's ACKs left the server (its own capture shows them) and never reached the client.
    blackholed_at = r.verdict()["faults"][0]["t_done"]
    server_acks = [
        p for p in read_tcp(r.run_dir / "server.pcap") if p.src == SERVER_IP and p.time > blackholed_at
    ]
    client_got = [
        p for p in read_tcp(r.run_dir / "client.pcap") if p.src == SERVER_IP and p.time > blackholed_at
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


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml")))
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
