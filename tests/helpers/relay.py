"""A user-space netem for the router namespace `w`, on kernels without sch_netem (this one).

Run inside `w` with the kernel's own forwarding turned off (`net.ipv4.ip_forward=0`, so w
drops what is not for itself, silently): it reads each IPv4 frame arriving on `to-a` or
`to-b` from an AF_PACKET socket and sends it out of the other link after the current
phase's delay, with its jitter, reordering, duplication and random loss, decided by a seeded
generator (the same decisions on every run for the same packets). SIGUSR1 moves to the next
phase (e.g. 20 ms of delay, then 300 ms, then a cut). Each phase is per direction:

    {"a->b": {"delay_ms": 20, "jitter_ms": 5, "reorder": 0.1, "reorder_ms": 10,
              "duplicate": 0.02, "loss": 0.01, "cut": false,
              "drop_rel_seq": [9001], "drop_rel_from": 11001}, "b->a": {...}}

`reorder` sends that share of packets at once while the others wait `delay_ms` (netem's
reorder), or, with `reorder_ms`, holds that share `reorder_ms` longer than the rest.
`drop_rel_seq` drops every send of the segments at those sequence numbers, relative to the
direction's SYN (as Wireshark shows them), `drop_rel_from` every data segment from there on:
exact losses, whatever the timing. Segments
arrive with partial checksums (veth offload), so the TCP checksum is computed again before
sending. Stdlib only (it runs under the system python3); one line of JSON per phase change on
stdout, so the harness sees when it took effect.

Usage: relay.py '{"macs": {"a": "..", "b": "..", "to-a": "..", "to-b": ".."}, "seed": 1,
                  "phases": [{...}, ...]}'
"""

from __future__ import annotations

import heapq
import json
import random
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

ETH_P_IP = 0x0800
PACKET_HOST = 0
COUNTS = {"relayed": 0, "lost": 0, "dropped": 0, "duplicated": 0, "reordered": 0, "cut": 0}
LINKS = {"to-a": ("a->b", "to-b", "b"), "to-b": ("b->a", "to-a", "a")}


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fix_tcp_checksum(ip: bytes) -> bytes:
    """The frame's IPv4 packet with its TCP checksum computed (other protocols unchanged)."""
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 6 or len(ip) < ihl + 20:
        return ip
    total = struct.unpack("!H", ip[2:4])[0]
    ip = ip[:total]
    seg = bytearray(ip[ihl:])
    seg[16:18] = b"\0\0"
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    seg[16:18] = struct.pack("!H", checksum(pseudo + bytes(seg)))
    return ip[:ihl] + bytes(seg)


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"t": time.time(), "event": event, **fields}), flush=True)


def tcp_fields(ip: bytes) -> tuple[int, int, int] | None:
    """(seq, TCP flags, payload length) of an IPv4 TCP packet, else None."""
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 6 or len(ip) < ihl + 20:
        return None
    total = struct.unpack("!H", ip[2:4])[0]
    seq = struct.unpack("!I", ip[ihl + 4 : ihl + 8])[0]
    doff = (ip[ihl + 12] >> 4) * 4
    return seq, ip[ihl + 13], total - ihl - doff


class Relay:
    """The two links, the phases, the queue of frames waiting for their time."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.macs = {k: mac(v) for k, v in config["macs"].items()}
        self.phases: list[dict[str, dict[str, Any]]] = config["phases"]
        self.phase = 0
        self.rng = random.Random(config.get("seed", 1))
        self.isn: dict[str, int] = {}  # per direction, from its SYN: for drop_rel_seq
        self.queue: list[tuple[float, int, str, bytes]] = []
        self.order = 0
        self.socks: dict[str, socket.socket] = {}
        for iface in LINKS:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            s.bind((iface, ETH_P_IP))
            s.setblocking(False)
            self.socks[iface] = s

    def advance(self, _sig: int, _frame: object) -> None:
        self.phase = min(self.phase + 1, len(self.phases) - 1)
        emit("phase", index=self.phase)

    def dropped(self, direction: str, rule: dict[str, Any], packet: bytes) -> bool:
        """The phase's drops: a cut, random loss, or exact segments by sequence number relative
        to the direction's SYN (as Wireshark shows it): `drop_rel_seq` (every send of those) and
        `drop_rel_from` (every data segment from there on)."""
        fields = tcp_fields(packet)
        if fields is not None and fields[1] & 0x02:  # SYN: its sender's initial sequence number
            self.isn[direction] = fields[0]
        if rule.get("cut"):
            COUNTS["cut"] += 1
            return True
        if fields is not None and fields[2] > 0 and direction in self.isn:
            rel = (fields[0] - self.isn[direction]) % 2**32
            late = "drop_rel_from" in rule and rule["drop_rel_from"] <= rel < 2**31
            if rel in rule.get("drop_rel_seq", ()) or late:
                COUNTS["dropped"] += 1
                return True
        if self.rng.random() < rule.get("loss", 0.0):
            COUNTS["lost"] += 1
            return True
        return False

    def take(self, iface: str, frame: bytes) -> None:
        direction, out, peer = LINKS[iface]
        rule = self.phases[self.phase].get(direction, {})
        packet = frame[14:]
        if self.dropped(direction, rule, packet):
            return
        delay = rule.get("delay_ms", 0.0) / 1000
        jitter = rule.get("jitter_ms", 0.0) / 1000
        if jitter:
            delay = max(0.0, delay + self.rng.uniform(-jitter, jitter))
        if self.rng.random() < rule.get("reorder", 0.0):
            COUNTS["reordered"] += 1
            extra = rule.get("reorder_ms")
            delay = delay + extra / 1000 if extra else 0.0
        out_frame = self.macs[peer] + self.macs[out] + frame[12:14] + fix_tcp_checksum(packet)
        copies = 2 if self.rng.random() < rule.get("duplicate", 0.0) else 1
        COUNTS["duplicated"] += copies - 1
        for _ in range(copies):
            self.order += 1
            heapq.heappush(self.queue, (time.monotonic() + delay, self.order, out, out_frame))

    def receive(self, s: socket.socket, iface: str) -> None:
        while True:
            try:
                frame, addr = s.recvfrom(65535)
            except BlockingIOError:
                return
            if addr[2] == PACKET_HOST and len(frame) >= 34:
                self.take(iface, frame)

    def send_due(self) -> None:
        now = time.monotonic()
        while self.queue and self.queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(self.queue)
            try:
                self.socks[out].send(frame)
                COUNTS["relayed"] += 1
            except OSError as exc:
                emit("send_error", error=str(exc), size=len(frame))

    def loop(self) -> None:
        by_fd = {s.fileno(): iface for iface, s in self.socks.items()}
        emit("ready", phase=0)
        while True:
            wait = max(0.0, self.queue[0][0] - time.monotonic()) if self.queue else 1.0
            try:
                ready, _, _ = select.select(list(self.socks.values()), [], [], wait)
            except InterruptedError:
                continue
            for s in ready:
                self.receive(s, by_fd[s.fileno()])
            self.send_due()


def main() -> None:
    relay = Relay(json.loads(sys.argv[1]))
    signal.signal(signal.SIGUSR1, relay.advance)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    relay.loop()


if __name__ == "__main__":
    try:
        main()
    finally:
        emit("counts", **COUNTS)
