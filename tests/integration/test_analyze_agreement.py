"""`tcpscen analyze --json` agrees with Wireshark on the captures the real scenarios make (each
host's pcap, and the annotated pcapng copies of the report): for every connection and each side,
the retransmissions, keep-alives, zero windows and RSTs that tshark counts, and the connections
themselves (tcp.stream and endpoints)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT, TCPSCEN, CliRun, scenario_names

pytestmark = pytest.mark.engine

SCENARIOS = scenario_names()
KINDS = ("retransmissions", "keepalives", "zero_windows", "rsts")
# What tshark marks, per kind.
_FIELDS = {
    "retransmissions": "tcp.analysis.retransmission",
    "keepalives": "tcp.analysis.keep_alive",
    "zero_windows": "tcp.analysis.zero_window",
    "rsts": "tcp.flags.reset",
}

# (stream, client endpoint, server endpoint) -> kind -> side -> count
Counts = dict[tuple[int, str, str], dict[str, dict[str, int]]]


def _endpoint(addr: str, port: str) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def tshark_counts(pcap: Path, conns: list[dict[str, Any]]) -> Counts:
    """Count tshark's marks per connection and side. Sides are named by the engine's client and
    server endpoints of the same tcp.stream; a stream tshark has that the engine lacks fails."""
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed: `make test` installs it (scripts/setup-host.sh)")
    fields = ["tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", *_FIELDS.values()]
    cmd = ["tshark", "-r", str(pcap), "-Y", "tcp && !icmp && !icmpv6", "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    by_stream = {c["stream"]: (c["client"], c["server"]) for c in conns}
    counts: Counts = {}
    streams: set[int] = set()
    for line in out.splitlines():
        stream, ip4, ip6, port, *marks = line.split("\t")
        streams.add(int(stream))
        ends = by_stream.get(int(stream))
        assert ends is not None, f"{pcap.name}: tshark's tcp.stream {stream} is missing from the engine's"
        sender = _endpoint(ip4 or ip6, port)
        assert sender in ends, f"{pcap.name}: stream {stream}: {sender} is neither of {ends}"
        side = "client" if sender == ends[0] else "server"
        row = counts.setdefault((int(stream), *ends), _zero())
        for kind, value in zip(_FIELDS, marks, strict=True):
            if value not in ("", "0", "False"):
                row[kind][side] += 1
    assert streams == set(by_stream), (
        f"{pcap.name}: tshark's streams {sorted(streams)}, ours {sorted(by_stream)}"
    )
    for c in conns:  # connections without any mark still need a row
        counts.setdefault((c["stream"], c["client"], c["server"]), _zero())
    return counts


def engine_counts(obj: dict[str, Any]) -> Counts:
    """The same counts from one `tcpscen analyze --json` object."""
    counts: Counts = {}
    for c in obj["connections"]:
        rsts = c["frames"]["rst"]
        assert max(len(rsts["client"]), len(rsts["server"])) < 100, "RST evidence capped: cannot count"
        counts[(c["stream"], c["client"], c["server"])] = {
            "retransmissions": dict(c["retransmissions"]),
            "keepalives": dict(c["keepalive_probes"]),
            "zero_windows": dict(c["zero_window"]),
            "rsts": {side: len(rsts[side]) for side in ("client", "server")},
        }
    return counts


def _zero() -> dict[str, dict[str, int]]:
    return {kind: {"client": 0, "server": 0} for kind in KINDS}


def analyze_json(*pcaps: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*TCPSCEN, "analyze", "--json", *map(str, pcaps)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def check_agreement(pcaps: list[Path]) -> int:
    """Compare every capture; returns the number of connections compared."""
    compared = 0
    for pcap, obj in zip(pcaps, analyze_json(*pcaps), strict=True):
        assert obj["file"] == str(pcap)
        ours = engine_counts(obj)
        assert ours == tshark_counts(pcap, obj["connections"]), pcap
        compared += len(ours)
    return compared


@pytest.mark.parametrize("name", SCENARIOS)
def test_analyze_agrees_with_tshark(scenario_run: Callable[[str], CliRun], name: str) -> None:
    result = scenario_run(name)
    assert result.run_dir is not None, result.stdout + result.stderr
    pcaps = sorted(result.run_dir.glob("*.pcap"))
    assert pcaps, f"{name}: no capture in {result.run_dir}"
    pcaps += sorted(result.run_dir.glob("*.pcapng"))  # the annotated copies: the pcapng reader too
    assert check_agreement(pcaps) >= 1, f"{name}: no connection in any capture"


@pytest.mark.parametrize("name", SCENARIOS)
def test_analyze_predicts_what_the_run_predicted(scenario_run: Callable[[str], CliRun], name: str) -> None:
    """One prediction path: `tcpscen analyze --scenario` on a host's own capture gives the
    run's prediction for that host (the same kind, side, start and end)."""
    result = scenario_run(name)
    assert result.run_dir is not None, result.stdout + result.stderr
    verdict = result.verdict()
    hosts = json.loads((result.run_dir / "report-input.json").read_text())["hosts"]
    compared = 0
    for host in hosts:
        mine = verdict["predictions"].get(host["name"])
        if mine is None or len(host["captures"]) != 1:
            continue  # nothing predicted, or several boots (the run reads them as one)
        (obj,) = analyze_json_with(result.run_dir / host["captures"][0], ROOT / f"scenarios/{name}.yaml")
        theirs = [p for c in obj["connections"] for p in c["predictions"] if p["side"] == mine["side"]]
        same = [p for p in theirs if p["from"].get("frame") == mine["from"].get("frame")]
        assert same, (host["name"], mine, theirs)
        assert (same[0]["kind"], same[0]["predicted_s"]) == (mine["kind"], pytest.approx(mine["predicted_s"]))
        compared += 1
    assert compared or not verdict["predictions"], name


def analyze_json_with(pcap: Path, scenario: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [*TCPSCEN, "analyze", "--json", "--scenario", str(scenario), str(pcap)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]
