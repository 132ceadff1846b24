"""The two seed scenarios, end to end on the engine; verdict facts checked against the pcaps and tshark."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from orchestrator.verdict.pcapfile import SYN, read_tcp
from tests.integration.conftest import ROOT, CliRun, tcpscen, tshark_count

pytestmark = pytest.mark.engine

CLIENT_IP, SERVER_IP = "10.77.0.20", "10.77.0.10"


@pytest.fixture(scope="module")
def power_cut(runs_root: Path) -> CliRun:
    return tcpscen("run", ROOT / "scenarios/power_cut.yaml", runs_dir=runs_root / "power_cut")


@pytest.fixture(scope="module")
def normal_close(runs_root: Path) -> CliRun:
    return tcpscen("run", ROOT / "scenarios/normal_close.yaml", runs_dir=runs_root / "normal_close")


def first_syn_frame(pcap: Path) -> int | None:
    for p in read_tcp(pcap):
        if p.flags & SYN and p.src == CLIENT_IP:
            return p.frame
    return None


def test_power_cut_passes(power_cut: CliRun) -> None:
    assert power_cut.code == 0, power_cut.stdout + power_cut.stderr
    assert "PASS" in power_cut.stdout and "FAIL" not in power_cut.stdout


def test_power_cut_run_directory(power_cut: CliRun) -> None:
    d = power_cut.run_dir
    assert d is not None
    for name in (
        "client.pcap",
        "server.pcap",
        "client.events.jsonl",
        "server.events.jsonl",
        "timeline.jsonl",
    ):
        assert (d / name).stat().st_size > 0, name
    # The capture was ready before the first SYN, on both sides.
    assert first_syn_frame(d / "client.pcap") is not None
    assert first_syn_frame(d / "server.pcap") is not None


def test_power_cut_facts(power_cut: CliRun) -> None:
    v = power_cut.verdict()
    conn = v["connection"]
    assert conn["client"].startswith(CLIENT_IP + ":") and conn["server"] == f"{SERVER_IP}:7000"
    assert conn["close"] == "none" and conn["rst_from"] is None
    assert conn["fins"]["client"] == [] and conn["rsts"]["client"] == []
    n = conn["retransmissions"]["client"]
    assert n >= 4
    gaps = conn["backoff_gaps_s"]
    assert all(b > a * 1.5 for a, b in itertools.pairwise(gaps[1:])), gaps
    assert v["apps"]["client"]["sees"] == "ETIMEDOUT"
    # ETIMEDOUT about tcp_retries2=5's 12.6 s after the first unacknowledged send.
    start = v["predictions"]["client"]["start"]["time"]
    took = v["apps"]["client"]["t"] - start
    assert 12.6 * 0.9 <= took <= 12.6 * 1.1, took


def test_power_cut_agrees_with_tshark(power_cut: CliRun) -> None:
    assert power_cut.run_dir is not None
    pcap = power_cut.run_dir / "client.pcap"
    ours = power_cut.verdict()["connection"]["retransmissions"]["client"]
    theirs = tshark_count(pcap, f"tcp.analysis.retransmission && ip.src=={CLIENT_IP}")
    assert ours == theirs


def test_normal_close(normal_close: CliRun) -> None:
    assert normal_close.code == 0, normal_close.stdout + normal_close.stderr
    conn = normal_close.verdict()["connection"]
    assert conn["close"] == "fin" and conn["initiator"] == "client"
    assert conn["close_packets"] in (3, 4)
    apps = normal_close.verdict()["apps"]
    assert apps["server"]["sees"] == "eof" and apps["client"]["sees"] == "eof"


def test_failing_expectation_exits_1(runs_root: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "normal_close_wrong.yaml"
    text = (ROOT / "scenarios/normal_close.yaml").read_text()
    wrong.write_text(text.replace("  close: fin\n", "  close: rst\n"))
    result = tcpscen("run", wrong, runs_dir=runs_root / "wrong")
    assert result.code == 1, result.stdout + result.stderr
    close = result.checks()["close"]
    assert close["passed"] is False and close["observed"] == "fin"
    assert all(c["passed"] for name, c in result.checks().items() if name != "close")


def test_pcaps_open_in_wireshark(power_cut: CliRun) -> None:
    assert power_cut.run_dir is not None
    if shutil.which("tshark") is None:
        pytest.fail("tshark missing")
    assert tshark_count(power_cut.run_dir / "server.pcap", "tcp") > 0
