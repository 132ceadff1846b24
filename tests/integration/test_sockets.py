"""The kernel's own view over time on the engine: each host's sockets sampled from inside its
namespace (HOST.sockets.jsonl), checked against the captures and, where it can, tshark."""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from orchestrator.pcap.reader import read_tcp
from orchestrator.verdict.socket_timeline import load_timeline
from tests.integration.conftest import CliRun, tcpscen, tshark_count
from tests.integration.test_scenarios import addresses

pytestmark = pytest.mark.engine


def socket_checks(r: CliRun) -> dict[str, dict[str, Any]]:
    return {name: c for name, c in r.checks().items() if name.startswith("sockets[")}


def test_keepalive_off_cut_both_kernels_keep_it_estab_to_the_end(run: Any) -> None:
    r = run("keepalive_off_cut")
    assert r.run_dir is not None
    conn = r.verdict()["connection"]
    checks = socket_checks(r)
    assert len(checks) == 2 and all(c["passed"] for c in checks.values()), checks
    for host, local, peer in (
        ("client", conn["client"], conn["server"]),
        ("server", conn["server"], conn["client"]),
    ):
        timeline = load_timeline(r.run_dir / f"{host}.sockets.jsonl", host)
        gaps = [b.t - a.t for a, b in itertools.pairwise(timeline.ticks)]
        assert 0.18 <= statistics.median(gaps) <= 0.25 and max(gaps) < 1.0, gaps  # 100-250 ms
        assert all(k.ok for k in timeline.ticks)
        (series,) = timeline.of(local, peer)
        assert {s.state for s in series.samples} == {"ESTAB"} and series.ended is None
        assert {s.timer for s in series.samples} == {"none"}  # keepalive off: no timer at all
        assert series.last.t >= r.verdict()["t0"] + 18  # sampled through the 20 s observation
        listeners = {s.local for s in timeline.listeners()}
        assert (host == "server") == ("0.0.0.0:7000" in listeners)
    sockets = r.verdict()["sockets"]
    (found,) = sockets["connections"]
    assert [f["text"] for f in found["findings"]] == [
        "both kernels still had the connection ESTAB at the end"
    ]
    assert sockets["hosts"]["server"]["listeners"][0]["backlog"] >= 1


def test_power_cut_the_retransmission_counter_climbs_then_the_socket_goes(run: Any) -> None:
    r = run("power_cut")
    assert r.run_dir is not None
    client_ip, _ = addresses(r)
    v = r.verdict()
    conn = v["connection"]
    checks = socket_checks(r)
    assert len(checks) == 4 and all(c["passed"] for c in checks.values()), checks
    timeline = load_timeline(r.run_dir / "client.sockets.jsonl", "client")
    (series,) = timeline.of(conn["client"], conn["server"])
    on = [s for s in series.samples if s.timer == "on"]
    counts = [s.timer_count for s in on]
    assert counts == sorted(counts) and counts[-1] >= 4  # icsk_retransmits, one per expiry
    backoffs = [s.rto_ms for s in on if s.backoff and s.rto_ms is not None]
    assert all(b == pytest.approx(2 * a, rel=0.05) for a, b in itertools.pairwise(backoffs) if b != a)
    # The kernel's own total, against tshark on the client's capture (an independent count).
    kernel = max(s.retrans_total for s in series.samples)
    assert kernel == tshark_count(
        r.run_dir / "client.pcap", f"tcp.analysis.retransmission && ip.src=={client_ip}"
    )
    # Gone from the samples within one interval of the app's ETIMEDOUT.
    error = v["apps"]["client"]["t"]
    assert series.gone is not None and series.last.t <= error + 0.05 and series.gone.t - error < 0.3
    texts = [f["text"] for f in v["sockets"]["connections"][0]["findings"]]
    assert f"client's kernel counted {kernel} retransmissions (ss), as its capture shows" in texts
    assert any(t.startswith("half-open at the end: server still had it ESTAB") for t in texts), texts
    assert not any(f["kind"] == "differs" for f in v["sockets"]["connections"][0]["findings"])
    page = (r.run_dir / "report.html").read_text()
    assert 'class="state-lane"' in page and "ESTAB · on" in page


def test_reboot_rst_a_new_kernel_gets_a_new_sampler(run: Any) -> None:
    r = run("reboot_rst")
    assert r.run_dir is not None
    assert (r.run_dir / "server.boot2.ss-samples.txt").exists()
    rows = [json.loads(line) for line in (r.run_dir / "server.sockets.jsonl").read_text().splitlines()]
    boots = [row["boot"] for row in rows if row["kind"] == "sample"]
    assert boots == sorted(boots) and set(boots) == {1, 2}
    texts = [f["text"] for f in r.verdict()["sockets"]["connections"][0]["findings"]]
    assert any("came from its new kernel (boot 2), which had no such socket" in t for t in texts), texts


CLIENT_CUT = """\
name: client_cut
description: The client's own cable is pulled while it sends.
duration: 8s
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: echo}}
  client:
    role: client
    address: 10.77.0.20
    agent: {mode: send, connect: "server:7000", every: 200ms}
timeline:
  - {after: client.connected, at: 1s, fault: disconnect, host: client}
expect:
  sockets:
    - {host: client, timer: persist}
    - {host: client, state: ESTAB, during: throughout}
"""


def test_sends_failing_locally_back_off_on_the_probe_timer_and_the_note_says_so(tmp_path: Path) -> None:
    # Measured: with its own interface gone, the client's data never leaves (no route), so
    # nothing is in flight to retransmit; the kernel waits on the probe timer, backing off.
    scenario = tmp_path / "client_cut.yaml"
    scenario.write_text(CLIENT_CUT)
    r = tcpscen("run", scenario, runs_dir=tmp_path / "runs")
    assert r.code == 0 and r.run_dir is not None, r.stdout + r.stderr
    v = r.verdict()
    conn = v["connection"]
    timeline = load_timeline(r.run_dir / "client.sockets.jsonl", "client")
    (series,) = timeline.of(conn["client"], conn["server"])
    persist = [s for s in series.samples if s.timer == "persist"]
    assert persist and max(s.backoff for s in persist) >= 3
    assert max(s.retrans_total for s in series.samples) == 0 and conn["retransmissions"]["client"] == 0
    cut = v["faults"][0]["t_done"]
    client_ip, _ = addresses(r)
    assert not [p for p in read_tcp(r.run_dir / "client.pcap") if p.src == client_ip and p.time > cut]
    findings = v["sockets"]["connections"][0]["findings"]
    assert any(
        f["kind"] == "differs" and "its sends failed locally and never left" in f["text"] for f in findings
    ), findings
