"""Capture: what runs in each host's namespace to record its side's packets, and how to read its stats."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Inside the host container the run directory is mounted here; pcaps land straight in it,
# so what was captured survives a crash of tcpscen.
RUN_DIR_MOUNT = "/run-dir"
READY_TEXT = "listening on"


def pcap_name(host: str, boot: int) -> str:
    """client.pcap; a host that powers on again gets server.boot2.pcap, and so on."""
    return f"{host}.pcap" if boot == 1 else f"{host}.boot{boot}.pcap"


def tcpdump_command(pcap: str) -> list[str]:
    # -i any: the interface is renamed (eth0 -> eth1) after a reconnect, and `any` follows it.
    # -U and --immediate-mode: every packet reaches the file at once, so a kill leaves a valid pcap.
    return [
        "tcpdump",
        "-i",
        "any",
        "-n",
        "-U",
        "--immediate-mode",
        "-s",
        "262144",
        "-w",
        f"{RUN_DIR_MOUNT}/{pcap}",
    ]


@dataclass(frozen=True)
class CaptureStats:
    captured: int | None
    dropped_by_kernel: int | None


def parse_stats(log: str) -> CaptureStats:
    """tcpdump's closing lines: 'N packets captured', 'N packets dropped by kernel'."""

    def number(label: str) -> int | None:
        m = re.search(rf"(\d+) packets? {label}", log)
        return int(m.group(1)) if m else None

    return CaptureStats(captured=number("captured"), dropped_by_kernel=number("dropped by kernel"))
