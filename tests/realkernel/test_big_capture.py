"""A big capture of real kernels' traffic: thousands of connections and a few bulk ones through
`w`, which drops 1% of the TCP segments it forwards. Every way of analysing it says the same
(the compiled pass with two processes, the vectorised pass in one, the reference loop), and
the retransmissions it counts are tshark's. The synthetic captures of the unit tests are one
program's idea of TCP; this one is Linux's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.pcap.reader import read_tcp
from orchestrator.tcp import compiled
from orchestrator.tcp.analysis import analyze_capture
from tests.helpers.netns import B_ADDR, ROOT, SERVER_PORT, Topology

pytestmark = pytest.mark.netns

SERVER = f"""
import json, socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{B_ADDR}", {SERVER_PORT}))
s.listen(512)
print(json.dumps({{"event": "listening"}}), flush=True)
def serve(c):
    try:
        while d := c.recv(65536):
            c.sendall(d * 2)
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# 6,000 short connections (1 to 20 exchanges of 100 to 8,000 bytes, one every 2 ms, up to 200
# at once) and 8 bulk ones (400 exchanges of 200 kB): about 350,000 segments, 34 MB at 96 bytes.
CLIENT = f"""
import json, random, socket, threading, time
rng = random.Random(1)
def client(size, rounds):
    try:
        c = socket.create_connection(("{B_ADDR}", {SERVER_PORT}), timeout=30)
        for _ in range(rounds):
            c.sendall(b"x" * size)
            want = 2 * size
            while want > 0:
                d = c.recv(65536)
                if not d:
                    return
                want -= len(d)
        c.close()
    except OSError:
        pass
threads = []
for _ in range(8):
    t = threading.Thread(target=client, args=(200_000, 400))
    t.start()
    threads.append(t)
for _ in range(6000):
    t = threading.Thread(target=client, args=(rng.randint(100, 8000), rng.randint(1, 20)))
    t.start()
    threads.append(t)
    if len(threads) > 200:
        threads.pop(0).join()
    time.sleep(0.002)
for t in threads:
    t.join()
print(json.dumps({{"event": "done"}}), flush=True)
"""


def _command(path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "analyze", *args, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("big")
    with Topology(out) as topo:
        topo.rule("meta l4proto tcp numgen random mod 100 < 1 drop", kind="loss")
        path = topo.capture("a", "eth0", snaplen=96)
        server = topo.command("b", "server", ["python3", "-c", SERVER])
        server.wait_for("listening", 10)
        client = topo.command("a", "client", ["python3", "-c", CLIENT])
        client.wait_for("done", 400)
        topo.stop_capture("a")
    return path


def test_every_pass_says_the_same_on_a_big_real_capture(big: Path) -> None:
    assert big.stat().st_size >= compiled.MIN_BYTES  # the default is the compiled pass, if numba is here
    default = _command(big, "--json")
    assert default == _command(big, "--json", "-j", "1", env={"TCPSCEN_NO_JIT": "1"})
    assert _command(big) == _command(big, "-j", "1", env={"TCPSCEN_NO_JIT": "1"})
    assert analyze_capture(read_tcp(big)) == analyze_capture(read_tcp(big), vectorised=False)
    assert len(json.loads(default)["connections"]) > 6000


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_its_retransmissions_are_tsharks(big: Path) -> None:
    ours = analyze_capture(read_tcp(big))
    counted = sum(c.retransmissions.client + c.retransmissions.server for c in ours.connections)
    flagged = subprocess.run(
        ["tshark", "-r", str(big), "-Y", "tcp.analysis.retransmission or tcp.analysis.fast_retransmission "
         "or tcp.analysis.spurious_retransmission", "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout.split()  # fmt: skip
    assert counted > 1000  # 1% of 350,000 segments were dropped: each one retransmitted
    assert counted == len(flagged)
