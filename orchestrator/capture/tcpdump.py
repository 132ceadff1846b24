"""The capture: the tcpdump that runs in each host's namespace to record its side's packets."""

from __future__ import annotations

import re

# Inside the host container the host's capture file alone is mounted in this folder (made by
# tcpscen in the run directory beforehand): packets land straight in it, so what was captured
# survives a crash of tcpscen, and tcpdump can write nothing else.
RUN_DIR_MOUNT = "/run-dir"
READY_TEXT = "listening on"
# The kernel's ring for the capture, in KiB. tcpdump's default (2 MiB) overflowed on a paused
# reader's burst (1,374 packets dropped). 32 MiB, inside the host container's memory limit.
BUFFER_KIB = 32768
# The bytes kept of each packet: every header tcpscen reads, no payload (its length comes from
# the IP header, as Wireshark's tcp.len). The worst cases fit: Linux cooked v2 (20) + IPv4 with
# options (60) + TCP with options (60) = 140; an ICMP error quoting one, 20 + 60 + 8 + 60 + 8 = 156;
# IPv6 leaves 136 bytes for extension headers. Why not more: --immediate-mode makes libpcap use
# TPACKET_V2, a ring of fixed-size slots of the snaplen each (on `any`, a cooked link, it does not
# cap them at the MTU), so tcpdump's 262144 made 128 slots of 512 KiB of the 32 MiB asked (64 MiB
# mapped): a burst of 128 packets, even 66-byte ACKs, filled it, and a SIGCONTed reader's burst
# lost 601 of 3,920 packets. At 256 bytes the same ring has 95,326 slots (measured).
SNAPLEN = 256


def pcap_name(host: str, boot: int) -> str:
    """client.pcap; a host that powers on again gets server.boot2.pcap, and so on."""
    return f"{host}.pcap" if boot == 1 else f"{host}.boot{boot}.pcap"


def tcpdump_command(pcap: str, folder: str = RUN_DIR_MOUNT) -> list[str]:
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
        str(SNAPLEN),
        "-B",
        str(BUFFER_KIB),
        "-w",
        f"{folder}/{pcap}",
    ]


_DROPPED = re.compile(r"^(\d+) packets? dropped by kernel$", re.MULTILINE)


def dropped_by_kernel(log: str) -> int:
    """What tcpdump said, at its end, it could not take from the kernel's ring: packets that
    crossed the interface and are not in the capture. Summed over every tcpdump in the log."""
    return sum(int(n) for n in _DROPPED.findall(log))
