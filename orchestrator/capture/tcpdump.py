"""The capture: the tcpdump that runs in each host's namespace to record its side's packets."""

from __future__ import annotations

# Inside the host container the host's capture file alone is mounted in this folder (made by
# tcpscen in the run directory beforehand): packets land straight in it, so what was captured
# survives a crash of tcpscen, and tcpdump can write nothing else.
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
