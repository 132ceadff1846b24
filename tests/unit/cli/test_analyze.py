"""`tcpscen analyze` end to end, as a user runs it, on crafted captures: the readable summary, the
JSON contract, the kernel model's predictions, several files, every capture format and link
type the scenarios make, and the clear refusals (exit 2, no traceback)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.kernel.predict import predict_connection
from orchestrator.kernel.settings import KernelSettings
from orchestrator.tcp.analysis import analyze_file
from orchestrator.tcp.contract import CONNECTION_FIELDS, analysis_json, write_analysis_json
from tests.helpers.pcaps import T0, Conv, tshark, write_fast, zero_window_backoff
from tests.integration.test_analyze_agreement import engine_counts, tshark_counts

ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "analyze", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def analyze_json(*args: str | Path) -> list[dict[str, Any]]:
    done = cli("--json", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def closed(c: Conv | None = None) -> Conv:
    """Handshake, data both ways, a retransmission, a zero window, then a 3-packet close."""
    c = c or Conv()
    c.handshake()
    first = c.data("c", 100)
    c.retransmit("c", first, dt=0.25)
    c.ack("s")
    c.data("s", 200)
    c.ack("c", win=0)
    c.ack("c", dt=0.1)
    c.fin("c")
    c.send("s", "FA", dt=0.001)
    c.ack("c", dt=0.001)
    return c


# The timer's retransmissions after the first (r1), as a real kernel's with tcp_retries2=5:
# RTO 0.416 s doubling; the next expiry, r1 + 12.896 s, is past the 12.6 s budget: the abort.
TIMER = (0.416, 1.248, 2.912, 6.24)


def power_cut(c: Conv | None = None, tail: bool = True) -> Conv:
    """Data never acknowledged: a tail-loss probe with new data at +0.205 s, the timer's first
    retransmission at +0.413 s and four more, then silence. With `tail`, another connection's
    segment 14 s later shows the capture went on past the abort."""
    c = c or Conv(client=("10.77.0.20", 40000), server=("10.77.0.10", 7000))
    c.handshake()
    first = c.data("c", 64)
    start = c.t
    c.data("c", 64, dt=0.205)
    c.retransmit("c", first, dt=start + 0.413 - c.t)
    for at in TIMER:
        c.retransmit("c", first, dt=start + 0.413 + at - c.t)
    if tail:
        other = Conv(client=("10.77.0.99", 41000), server=c.server, t=start + 14.5, segs=c.segs)
        other.send("c", "S")
    return c


CONTRACT_TYPES: dict[str, tuple[type, ...]] = {
    "client": (str,),
    "server": (str,),
    "handshake": (str,),
    "close": (str,),
    "initiator": (str, type(None)),
    "close_packets": (int, type(None)),
    "rst_from": (str, type(None)),
    "retransmissions": (dict,),
    "backoff_gaps_s": (list,),
    "keepalive_probes": (dict,),
    "keepalive": (dict, type(None)),
    "zero_window": (dict,),
    "duration_s": (float, int),
    "notes": (list,),
}


def check_contract(obj: dict[str, Any]) -> None:
    assert isinstance(obj["file"], str) and isinstance(obj["packets"], int)
    for conn in obj["connections"]:
        assert list(conn)[: len(CONNECTION_FIELDS)] == list(CONNECTION_FIELDS)
        for name, types in CONTRACT_TYPES.items():
            assert isinstance(conn[name], types), (name, conn[name])
        assert conn["handshake"] in ("complete", "partial", "missing")
        assert conn["close"] in ("fin", "fin-unanswered", "rst", "none")
        for name in ("initiator", "rst_from"):
            assert conn[name] in ("client", "server", None)
        assert conn["close_packets"] in (3, 4, None)
        for name in ("retransmissions", "keepalive_probes", "zero_window"):
            assert set(conn[name]) == {"client", "server"}
            assert all(isinstance(v, int) and v >= 0 for v in conn[name].values())
        assert all(isinstance(g, float) for g in conn["backoff_gaps_s"])
        if conn["keepalive"] is not None:
            assert set(conn["keepalive"]) == {"first_after_idle_s", "interval_s"}
        assert all(isinstance(n, str) for n in conn["notes"])
        host, _, port = conn["client"].rpartition(":")
        assert host and port.isdigit()


def test_readable_summary(tmp_path: Path) -> None:
    path = closed().write(tmp_path / "closed.pcap")
    done = cli(path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"{path}: 12 frames, 12 TCP segments, 1 connection (Ethernet)" in out
    assert "#0 10.0.0.1:40000 → 10.0.0.2:80" in out and "12 packets" in out
    assert "handshake complete · close fin (first FIN from client, 3 packets)" in out
    assert "retransmissions 1/0 · keep-alives 0/0 · zero windows 1/0" in out
    assert "· client closed first; server merged its ACK into its FIN: 3-packet close" in out
    assert "model:" not in out  # everything was acknowledged: no abort to predict


def test_json_contract(tmp_path: Path) -> None:
    path = closed().write(tmp_path / "closed.pcap")
    (obj,) = analyze_json(path)
    check_contract(obj)
    assert (obj["file"], obj["packets"], obj["tcp_packets"], obj["truncated"]) == (str(path), 12, 12, False)
    (conn,) = obj["connections"]
    assert (conn["client"], conn["server"], conn["handshake"], conn["close"]) == (
        "10.0.0.1:40000",
        "10.0.0.2:80",
        "complete",
        "fin",
    )
    assert (conn["initiator"], conn["close_packets"], conn["rst_from"]) == ("client", 3, None)
    assert conn["retransmissions"] == {"client": 1, "server": 0}
    assert conn["zero_window"] == {"client": 1, "server": 0}
    assert conn["keepalive"] is None and conn["backoff_gaps_s"] == [0.25]
    assert conn["frames"]["retransmission"] == {"client": [5], "server": []}
    assert conn["frames"]["fin"] == {"client": [10], "server": [11]}
    assert conn["stream"] == 0 and conn["packets"] == 12 and conn["start_time"] == T0
    assert conn["predictions"] == []


def test_sysctl_predictions(tmp_path: Path) -> None:
    path = power_cut().write(tmp_path / "cut.pcap")
    conn, _later = analyze_json(path, "--sysctl", "net.ipv4.tcp_retries2=5")[0]["connections"]
    check_contract({"file": "", "packets": 0, "connections": [conn]})
    (p,) = conn["predictions"]
    assert (p["kind"], p["side"], p["within_tolerance"]) == ("rto-abort", "client", True)
    assert p["predicted_s"] == pytest.approx(12.896, abs=0.01)
    assert p["observed_s"] == pytest.approx(6.24 + 2 * 3.328, abs=1e-3) and p["basis"].startswith(
        "tcp_retries2=5"
    )
    # From the timer's first retransmission (frame 6), not the original send (frame 4).
    assert (p["from"]["frame"], p["from"]["time"]) == (6, pytest.approx(T0 + 0.011 + 0.413))
    assert p["app_error"] == "ETIMEDOUT" and p["beyond_capture"] is False
    assert all(e.startswith(("the first retransmission", "knife edge")) for e in p["explanations"])
    # Without the setting: the kernel default, and the setting that fits.
    (p,) = analyze_json(path)[0]["connections"][0]["predictions"]
    assert p["predicted_s"] > 924.6 and p["within_tolerance"] is False
    assert any(
        "tcp_retries2=5 (12.6 s)" in e and "fits what the capture shows" in e for e in p["explanations"]
    )
    done = cli(path, "--sysctl", "net.ipv4.tcp_retries2=5")
    assert "model: rto-abort by client, 12.896 s after" in done.stdout and "within 10%" in done.stdout


def test_settings_from_a_scenario(tmp_path: Path) -> None:
    path = power_cut().write(tmp_path / "cut.pcap")
    obj = analyze_json(path, "--scenario", ROOT / "scenarios/power_cut.yaml")[0]
    (p,) = obj["connections"][0]["predictions"]
    assert p["predicted_s"] == pytest.approx(12.896, abs=0.01)
    assert p["basis"].startswith("tcp_retries2=5 (scenario)")


def test_bad_settings_exit_2(tmp_path: Path) -> None:
    path = power_cut().write(tmp_path / "cut.pcap")
    done = cli(path, "--sysctl", "net.ipv4.tcp_fin_timeout=3", "--sockopt", "TCP_KEEPCNT=x")
    assert done.returncode == 2 and done.stdout == ""
    assert "tcp_fin_timeout" in done.stderr and "'x' is not a whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_several_files(tmp_path: Path) -> None:
    a = closed().write(tmp_path / "a.pcap")
    b = power_cut().write(tmp_path / "b.pcap")
    objs = analyze_json(a, b)
    assert [o["file"] for o in objs] == [str(a), str(b)]
    assert [o["connections"][0]["close"] for o in objs] == ["fin", "none"]
    done = cli(a, b)
    assert done.stdout.index(f"{a}:") < done.stdout.index(f"{b}:")


def test_truncated_file_says_so_and_is_analysed(tmp_path: Path) -> None:
    whole = closed().write(tmp_path / "whole.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[:-30])  # the last packet loses its end
    (obj,) = analyze_json(cut)
    assert obj["truncated"] is True and obj["packets"] == 11
    assert "cut.pcap: the file ends inside a packet after frame 11" in obj["problems"][0]
    (conn,) = obj["connections"]
    assert conn["close"] == "fin" and conn["packets"] == 11
    done = cli(cut)
    assert done.returncode == 0
    assert "truncated" in done.stdout and "warning: cut.pcap: the file ends inside a packet" in done.stderr


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"hello, this is text\n", "not a pcap or pcapng capture (it looks like text)"),
        (b"", "empty file"),
        (b"\x00\x01\x02\x03" * 10, "unknown magic"),
    ],
)
def test_not_a_capture_exits_2_without_traceback(tmp_path: Path, content: bytes, words: str) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    done = cli(bad)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error:") and words in done.stderr and str(bad) in done.stderr
    assert "Traceback" not in done.stderr


def test_every_bad_file_is_named_and_nothing_is_analysed(tmp_path: Path) -> None:
    good = closed().write(tmp_path / "good.pcap")
    text = tmp_path / "notes.txt"
    text.write_text("not a capture")
    done = cli(good, text, tmp_path / "missing.pcap")
    assert done.returncode == 2 and done.stdout == ""
    assert "notes.txt" in done.stderr and "missing.pcap: no such capture file" in done.stderr


@pytest.mark.parametrize(
    ("link", "fmt", "v6", "linkname"),
    [
        ("sll2", "pcap", False, "Linux cooked v2"),
        ("sll", "pcap-ns", False, "Linux cooked v1"),
        ("ether", "pcapng", False, "Ethernet"),
        ("sll2", "pcapng", True, "Linux cooked v2"),
        ("ether", "pcap", True, "Ethernet"),
    ],
)
def test_link_types_formats_and_ipv6(tmp_path: Path, link: str, fmt: str, v6: bool, linkname: str) -> None:
    c = closed()
    power_cut(Conv(client=("10.0.0.3", 50000), server=("10.0.0.2", 80), t=c.t + 1, segs=c.segs), tail=False)
    Conv(client=("10.0.0.4", 50001), server=("10.0.0.2", 80), t=c.segs[-1].t + 14, segs=c.segs).send("c", "S")
    path = tmp_path / f"x.{fmt}"
    c.write(path, link=link, fmt=fmt, v6=v6)  # type: ignore[arg-type]
    (obj,) = analyze_json(path, "--sysctl", "tcp_retries2=5")
    check_contract(obj)
    first, second, _later = obj["connections"]
    if v6:
        assert (first["client"], first["server"]) == ("[2001:db8::a:0:0:1]:40000", "[2001:db8::a:0:0:2]:80")
    else:
        assert (first["client"], second["client"]) == ("10.0.0.1:40000", "10.0.0.3:50000")
    assert (first["close"], first["retransmissions"]["client"], first["zero_window"]["client"]) == (
        "fin",
        1,
        1,
    )
    assert (second["close"], second["retransmissions"]["client"]) == ("none", 5)
    assert second["predictions"][0]["within_tolerance"] is True
    assert linkname in cli(path).stdout
    if tshark():  # the integration test's own comparison, here on a crafted capture
        assert engine_counts(obj) == tshark_counts(path, obj["connections"])


@pytest.mark.parametrize("conversations", [0, 2])
def test_streamed_json_is_the_contract_object(tmp_path: Path, conversations: int) -> None:
    c = Conv()
    if conversations:
        closed(c)
        power_cut(
            Conv(client=("10.0.0.3", 50000), server=("10.0.0.2", 80), t=c.t + 1, segs=c.segs), tail=False
        )
    analysis = analyze_file(write_fast(tmp_path / "x.pcap", c.segs))
    assert len(analysis.connections) == conversations
    predictions = {}
    if conversations:
        predictions[1] = predict_connection(analysis.connections[1], lambda side: KernelSettings())
        assert predictions[1]
    out = io.StringIO()
    write_analysis_json(out, analysis, "x.pcap", predictions)
    assert out.getvalue() == json.dumps(analysis_json(analysis, "x.pcap", predictions)) + "\n"


def test_connect_settings_are_taken_and_their_units_said(tmp_path: Path) -> None:
    c = Conv(client=("10.77.0.20", 40000), server=("10.77.0.10", 7000))
    syn = c.send("c", "S")
    for t in (1.02, 2.05):
        c.retransmit("c", syn, dt=c.segs[syn - 1].t + t - c.t)
    path = c.write(tmp_path / "syn.pcap")
    (conn,) = analyze_json(path, "--sysctl", "net.ipv4.tcp_syn_retries=1")[0]["connections"]
    (p,) = conn["predictions"]
    assert (p["kind"], p["predicted_s"]) == ("connect-timeout", 3.0)
    assert "--sockopt" in cli(path, "--help").stdout and "milliseconds" in cli(path, "--help").stdout


def test_a_scenario_whose_addresses_are_not_in_the_capture_is_said_unused(tmp_path: Path) -> None:
    path = power_cut(Conv(client=("10.77.9.20", 40000), server=("10.77.9.10", 7000))).write(
        tmp_path / "x.pcap"
    )
    done = cli(path, "--scenario", ROOT / "scenarios/power_cut.yaml")
    assert (
        done.returncode == 0 and "none of the addresses" in done.stderr and "report-input.json" in done.stderr
    )


def test_a_run_moved_to_another_subnet_keeps_its_hosts_settings(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = power_cut(Conv(client=("10.77.9.20", 40000), server=("10.77.9.10", 7000))).write(
        run_dir / "client.pcap"
    )
    hosts = [
        {"name": "client", "role": "client", "address": "10.77.9.20", "captures": ["client.pcap"]},
        {"name": "server", "role": "server", "address": "10.77.9.10", "captures": ["server.pcap"]},
    ]
    (run_dir / "report-input.json").write_text(json.dumps({"hosts": hosts}))
    conn = analyze_json(path, "--scenario", ROOT / "scenarios/power_cut.yaml")[0]["connections"][0]
    assert conn["predictions"][0]["basis"].startswith("tcp_retries2=5 (scenario)")


def test_probes_that_back_off_are_shown_by_their_gaps(tmp_path: Path) -> None:
    done = cli(zero_window_backoff().write(tmp_path / "zw-backoff.pcap"))
    assert done.returncode == 0, done.stderr
    assert (
        "keep-alive probes: the first after 0.236 s idle, then at gaps of 0.477, 0.961, 1.885 s"
        in done.stdout
    )
    assert "then every" not in done.stdout
