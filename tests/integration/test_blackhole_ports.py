"""Blackhole rules name the run's own bridge ports, not addresses on every bridge: a table left by
a killed run touches no later run on the same addresses (`doctor` reports it, `clean` removes
it), and a host that gets a new port (reconnect) stays blackholed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backend.docker.bridge import table_name
from orchestrator.backend.docker.cleanup import remove_run
from orchestrator.backend.docker.engine import connect_engine
from tests.helpers.leftovers import nft_tables, run_ids
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.engine

SUBNET = "10.199.7.0/24"  # both runs, and no one else's
KILLED = f"""\
name: leftover_table
duration: 30s
network: {{subnet: {SUBNET}}}
hosts:
  server: {{role: server, address: 10.199.7.10, agent: {{mode: echo, port: 7000}}}}
  client: {{role: client, address: 10.199.7.20, agent: {{mode: send, connect: "server:7000", every: 200ms}}}}
timeline:
  - {{after: client.connected, at: 500ms, fault: blackhole, host: server, direction: both}}
"""
LATER = f"""\
name: later_run
duration: 10s
network: {{subnet: {SUBNET}}}
hosts:
  server: {{role: server, address: 10.199.7.10, agent: {{mode: echo, port: 7000}}}}
  client:
    role: client
    address: 10.199.7.20
    agent: {{mode: send, connect: "server:7000", every: 100ms, count: 5, close_after: 1s}}
expect:
  handshake: complete
  close: fin
  retransmissions: {{client: 0, server: 0}}
  apps: {{client: {{sees: eof}}, server: {{sees: eof}}}}
"""


def tcpscen(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "300"},
        check=False,
    )


def subnet_of(runs_dir: Path) -> str:
    [timeline] = runs_dir.glob("*/timeline.jsonl")
    notes = [json.loads(line) for line in timeline.read_text().splitlines()]
    return str(next(n["subnet"] for n in notes if n.get("kind") == "network"))


def test_a_leftover_table_touches_no_later_run_and_is_cleaned(tmp_path: Path) -> None:
    (tmp_path / "killed.yaml").write_text(KILLED)
    (tmp_path / "later.yaml").write_text(LATER)
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", tmp_path / "killed.yaml", "--runs-dir", killed_dir],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    table = ""
    for _ in range(150):  # until the blackhole's rules are in place
        time.sleep(0.2)
        ids = run_ids(killed_dir)
        table = table_name(ids[0]) if ids else ""
        if "drop" in nft_tables().get(table, ""):
            break
    else:
        proc.kill()
        pytest.fail("the blackhole never came")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert subnet_of(killed_dir) == SUBNET
    # The run's containers and network go (by hand, say); its table stays on the machine.
    remove_run(connect_engine(), run_ids(killed_dir)[0])
    rules = nft_tables()[table]
    assert "ip saddr 10.199.7.10 drop" in rules and "ip daddr 10.199.7.10 drop" in rules, rules
    assert "iifname" in rules and "oifname" in rules, "each rule names the run's own bridge port"

    later = tcpscen("run", tmp_path / "later.yaml", "--runs-dir", tmp_path / "later")
    assert subnet_of(tmp_path / "later") == SUBNET, "the later run is on the same addresses"
    assert later.returncode == 0 and "result: PASS" in later.stdout, later.stdout + later.stderr

    doctor = tcpscen("doctor")
    leftovers = next(line for line in doctor.stdout.splitlines() if "leftovers:" in line)
    assert f"table {table}" in leftovers and leftovers.startswith("no"), doctor.stdout
    clean = tcpscen("clean")
    assert clean.returncode == 0 and table in clean.stdout, clean.stdout + clean.stderr
    assert table not in nft_tables()


FOLLOWED = """\
name: blackhole_then_reconnect
duration: 25s
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: sink}}
  client:
    role: client
    address: 10.77.0.20
    sysctls: {net.ipv4.tcp_retries2: 5}
    agent: {mode: send, connect: "server:7000", every: 200ms}
timeline:
  - {after: client.connected, at: 1s, fault: blackhole, host: server, direction: both}
  - {after: client.connected, at: 2s, fault: disconnect, host: server}
  - {after: client.connected, at: 3s, fault: reconnect, host: server}
expect:
  apps: {client: {sees: ETIMEDOUT}}
"""


def test_a_blackhole_follows_its_host_to_a_new_port(tmp_path: Path) -> None:
    """After the reconnect the server's veth is another: were the rules left on the old one, the
    retransmissions would get through and the connection recover (no ETIMEDOUT)."""
    (tmp_path / "followed.yaml").write_text(FOLLOWED)
    done = tcpscen("run", tmp_path / "followed.yaml", "--runs-dir", tmp_path / "runs")
    assert done.returncode == 0 and "result: PASS" in done.stdout, done.stdout + done.stderr
