"""The capture: the tcpdump that runs in each host's namespace to record its side's packets."""

from __future__ import annotations

import re

# Inside the host container the host's capture file alone is mounted in this folder (made by
# tcpscen in the run directory beforehand): packets land straight in it, so what was captured
# survives a crash of tcpscen, and tcpdump can write nothing else.
RUN_DIR_MOUNT = "/run-dir"
READY_TEXT = "listening on"
# The kernel's ring for the capture, in KiB. tcpdump's default (2 MiB) holds only about 30 of the
# 64 KiB GSO segments a bulk sender's capture sees: a paused reader's burst overflowed it (1,374
# packets dropped). 32 MiB, inside the host container's memory limit.
BUFFER_KIB = 32768


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
        "-B",
        str(BUFFER_KIB),
        "-w",
        f"{RUN_DIR_MOUNT}/{pcap}",
    ]


_DROPPED = re.compile(r"^(\d+) packets? dropped by kernel$", re.MULTILINE)


def dropped_by_kernel(log: str) -> int:
    """What tcpdump said, at its end, it could not take from the kernel's ring: packets that
    crossed the interface and are not in the capture. Summed over every tcpdump in the log."""
    return sum(int(n) for n in _DROPPED.findall(log))
