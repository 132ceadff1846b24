"""The capture's ring holds a burst its reader does not drain: tcpscen's own tcpdump command
(orchestrator/capture/tcpdump.py), stopped by SIGSTOP while a burst crosses `any`, must lose
nothing. With tcpdump's 262144-byte snaplen the same 32 MiB ring had 128 slots
(--immediate-mode's TPACKET_V2 sizes each slot by the snaplen on a cooked link): it kept 64 of
these datagrams and dropped the rest, as a SIGCONTed app's burst lost 601 of 3,920 packets in a
Docker run."""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.capture.tcpdump import dropped_by_kernel, tcpdump_command
from tests.helpers.netns import PREFIX, run

pytestmark = pytest.mark.netns

BURST = 20_000  # datagrams; on lo `any` sees each twice (out and in), so 40,000 ring slots
PAYLOAD = 32
# One datagram in the file: pcap record header, cooked v2, IPv4, UDP, payload (under the snaplen).
RECORD = 16 + 20 + 20 + 8 + PAYLOAD
SEND = f"""
import socket
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("127.0.0.1", 0))  # never read: datagrams it cannot hold are dropped after the capture
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range({BURST}):
    out.sendto(b"x" * {PAYLOAD}, sink.getsockname())
"""


def test_the_ring_holds_a_burst_while_tcpdump_is_stopped(tmp_path: Path) -> None:
    ns = f"{PREFIX}{secrets.token_hex(4)}-ring"
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        log = _capture_burst(ns, tmp_path)
    finally:
        run(["ip", "netns", "del", ns], check=False)
    assert dropped_by_kernel(log) == 0, log
    captured = re.search(r"^(\d+) packets? captured$", log, re.MULTILINE)
    assert captured is not None and int(captured.group(1)) >= BURST, log


def _capture_burst(ns: str, folder: Path) -> str:
    """tcpdump stopped, the burst sent, tcpdump resumed until the file holds it; its counts."""
    pcap = folder / "ring.pcap"
    argv = ["ip", "netns", "exec", ns, *tcpdump_command(pcap.name, str(folder))]
    dump = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert dump.stderr is not None
        head = [dump.stderr.readline(), dump.stderr.readline()]
        assert any("listening on" in line for line in head), head
        dump.send_signal(signal.SIGSTOP)  # `ip netns exec` execs tcpdump: this PID is tcpdump's
        run(["ip", "netns", "exec", ns, "python3", "-c", SEND])
        dump.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while pcap.stat().st_size < 24 + BURST * RECORD and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the outgoing copies, which libpcap skips, after the last incoming one
        dump.send_signal(signal.SIGINT)
        _, rest = dump.communicate(timeout=10)
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()
    return "".join(head) + rest
