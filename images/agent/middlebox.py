#!/usr/bin/env python3
"""tcpscen's router supervisor, in the router's namespace. Three commands:

``python3 middlebox.py capture '<json config>'`` is the router host's main process, run as the
capture user (tcpdump holds NET_RAW as a file capability): one capture per network, each on
the interface that has the router's address there, so the inside and the outside views are
separate files; it prints READY once every capture listens, starts a capture again when its
interface comes back (a reconnect), appending to the same file, and stops them all on SIGINT.
Each file was made and mounted alone by tcpscen: this process writes only into those.

``python3 middlebox.py serve '<json config>'`` runs as root beside it (docker exec, with the
container's NET_ADMIN and NET_RAW): it loads the router's nftables ruleset, logs conntrack's
events, and keeps a table of the flows' sequence numbers (`flowtable`). It serves commands on
a unix socket, which ``python3 middlebox.py ctl '<json>'`` sends (a fault runs it with docker exec):

* ``{"op": "inject", "to": IP, "port": N, "flags": "R", "offset": 0}``: forge a segment into
  the latest flow toward IP with port N on either end, its sequence number the one IP expects
  plus `offset` (0: exact; inside the window: RFC 5961's challenge ACK instead of a reset);
* ``{"op": "clamp", "seconds": N}``: from now on no established flow's timer runs longer than
  N s after its last packet (`conntrack -U` every 200 ms: the per-namespace sysctl is read-only
  in a container once it runs, and an nft ct timeout policy binds only new flows);
* ``{"op": "flush"}``: `conntrack -F`, as a middlebox that reboots;
* ``{"op": "open"}``: the boot gate goes (serve's ``gated``: every packet in is dropped, before
  conntrack, until tcpscen has seen every capture listen), and the router forwards.

With ``reset_both``, a flow that conntrack forgets while ESTABLISHED (its DESTROY event) gets an
RST toward each end, with the sequence number each expects: a load balancer's "reset on idle".
Conntrack frees an expired entry only when something looks it up, so the table is listed every
250 ms to make DESTROY come on time. What it forged goes to ``middlebox.jsonl``.

The serving side runs as root without DAC_OVERRIDE, so it cannot write the run directory's files
(made for the capture user): its ruleset, conntrack's log and its own log stay in STATE_DIR inside
the container, and tcpscen reads them out before each stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import flowtable

RUN_DIR = Path("/run-dir")
STATE_DIR = Path("/var/lib/tcpscen")
SOCKET = "/tmp/tcpscen-middlebox.sock"
READY = "tcpscen router ready"
PCAP_HEADER = 24  # a pcap file's global header: written once, at the file's start
# Every packet in, dropped before conntrack sees it (raw priority), while the router boots.
GATE_TABLE = "tcpscen_boot"
GATE = f"""table inet {GATE_TABLE} {{
  chain gate {{
    type filter hook prerouting priority raw; policy drop;
  }}
}}
"""


class Supervisor:
    def __init__(self, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        self.captures: list[dict[str, str]] = config["captures"]
        self.reset_both: bool = bool(config.get("reset_both"))
        self.table = flowtable.FlowTable()
        self.stop = threading.Event()
        self.dumps: dict[str, subprocess.Popen[bytes]] = {}
        self.copies: list[threading.Thread] = []
        self.written: set[str] = set()  # pcaps that have their file header already
        self.clamp_s: int | None = None
        self.last_state: dict[flowtable.Tuple, str] = {}
        self.log_lock = threading.Lock()

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps({"t": time.time(), "host": self.name, "event": event, **fields})
        with self.log_lock, (STATE_DIR / "middlebox.jsonl").open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    def start_captures(self, wait: bool) -> None:
        """Each capture now, or (`wait`: a reboot, cabled later) once its interface is there."""
        for capture in self.captures:
            if not wait or interface_of(capture["address"]) is not None:
                self.start_capture(capture["address"], capture["pcap"])
        threading.Thread(target=self.tend_captures, daemon=True).start()

    def start_serving(self, rules: str, gated: bool) -> None:
        STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        if gated:  # closed until tcpscen says every capture listens ("open")
            run(["nft", "-f", "-"], GATE)
        ruleset = STATE_DIR / "rules.nft"  # kept for the user: what the router ran
        with ruleset.open("w", encoding="utf-8") as out:
            out.write(rules)
        run(["nft", "-f", str(ruleset)])
        threading.Thread(target=self.follow_conntrack, daemon=True).start()
        threading.Thread(target=flowtable.sniff, args=(self.table, self.stop), daemon=True).start()
        threading.Thread(target=self.tend_conntrack, daemon=True).start()
        threading.Thread(target=warm_up_scapy, daemon=True).start()
        self.serve()

    def start_capture(self, address: str, pcap: str) -> None:
        iface = interface_of(address)
        if iface is None:
            raise RuntimeError(f"no interface has {address}")
        command = [
            "tcpdump",
            "-i",
            iface,
            "-n",
            "-U",
            "--immediate-mode",
            # Headers only, as the hosts' captures (orchestrator/capture/tcpdump.py): with
            # --immediate-mode each slot of the ring is the snaplen (up to the 64 KiB a GSO
            # segment needs on Ethernet), so 262144 left 16 MiB 256 slots; 256 leaves 49,932 (measured).
            "-s",
            "256",
            "-B",
            "16384",  # KiB: tcpdump's default ring overflows on a burst of GSO segments
            "-w",
            "-",
        ]
        dump = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert dump.stderr is not None and dump.stdout is not None
        line = dump.stderr.readline().decode(errors="replace")
        sys.stderr.write(line)
        if "listening on" not in line:
            raise RuntimeError(f"tcpdump on {iface}: {line.strip()}")
        threading.Thread(target=relay, args=(dump.stderr,), daemon=True).start()
        # A capture started again after a reconnect goes on in the same file, without a second header.
        skip = PCAP_HEADER if pcap in self.written else 0
        self.written.add(pcap)
        copy = threading.Thread(target=append_pcap, args=(dump.stdout, RUN_DIR / pcap, skip), daemon=True)
        copy.start()
        self.copies.append(copy)
        self.dumps[address] = dump

    def tend_captures(self) -> None:
        """Every 200 ms: a capture whose interface came back (a reconnect) starts again."""
        while not self.stop.wait(0.2):
            for capture in self.captures:
                address, pcap = capture["address"], capture["pcap"]
                dump = self.dumps.get(address)
                if (dump is None or dump.poll() is not None) and interface_of(address) is not None:
                    with contextlib.suppress(RuntimeError):
                        self.start_capture(address, pcap)

    def tend_conntrack(self) -> None:
        """Every 200 ms: the timers are clamped; with reset_both, listing the table expires entries now."""
        while not self.stop.wait(0.2):
            if self.clamp_s is not None:
                self.clamp()
            elif self.reset_both:
                subprocess.run(["conntrack", "-L", "-p", "tcp"], capture_output=True, check=False)

    def clamp(self) -> None:
        listing = subprocess.run(
            ["conntrack", "-L", "-p", "tcp"], capture_output=True, text=True, check=False
        )
        for line in listing.stdout.splitlines():
            fields = line.split()
            if len(fields) < 4 or fields[3] != "ESTABLISHED" or not fields[2].isdigit():
                continue
            if int(fields[2]) <= (self.clamp_s or 0):
                continue
            parsed = flowtable.parse_event("[0] [UPDATE] " + line)
            if parsed is None:
                continue
            src, sport, dst, dport = parsed.orig
            subprocess.run(
                [
                    "conntrack",
                    "-U",
                    "-p",
                    "tcp",
                    "-s",
                    src,
                    "-d",
                    dst,
                    "--sport",
                    str(sport),
                    "--dport",
                    str(dport),
                    "--timeout",
                    str(self.clamp_s),
                ],
                capture_output=True,
                check=False,
            )

    def follow_conntrack(self) -> None:
        log = (STATE_DIR / "conntrack.log").open("a", encoding="utf-8")
        events = subprocess.Popen(
            ["conntrack", "-E", "-o", "timestamp", "-p", "tcp"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert events.stdout is not None
        for line in events.stdout:
            log.write(line)
            log.flush()
            event = flowtable.parse_event(line)
            if event is None:
                continue
            if event.kind != "DESTROY":
                self.last_state[event.orig] = event.state or self.last_state.get(event.orig, "")
                continue
            was = self.last_state.pop(event.orig, event.state or "")
            if self.reset_both and was == "ESTABLISHED":
                self.reset(event)

    def reset(self, event: flowtable.CtEvent) -> None:
        """RSTs to both ends of a forgotten flow, each with the sequence number it expects."""
        (c, cport, s, sport), (s2, sport2, r, rport) = event.orig, event.reply
        for sender, toward in (((s, sport), (c, cport)), ((r, rport), (s2, sport2))):
            # The receiver's own direction of the flow tells what it expects next.
            expected = self.table.expected_by((toward[0], toward[1], sender[0], sender[1]))
            if expected is None:
                self.record("reset-skipped", to=toward[0], reason="no segment of the flow seen")
                continue
            self.send(sender, toward, "R", expected, why="reset-both: conntrack forgot the flow")

    def send(
        self, src: tuple[str, int], dst: tuple[str, int], flags: str, seq: int, why: str
    ) -> dict[str, Any]:
        flowtable.send_raw(flowtable.forge(src[0], src[1], dst[0], dst[1], flags, seq), dst[0])
        sent = {"src": src[0], "sport": src[1], "dst": dst[0], "dport": dst[1], "flags": flags, "seq": seq}
        self.record("forged", why=why, **sent)
        return sent

    def serve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(SOCKET)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(SOCKET)
        server.listen()
        self.record("ready")
        while not self.stop.is_set():
            conn, _ = server.accept()
            with conn:
                try:
                    reply = self.command(json.loads(conn.recv(65536).decode()))
                except Exception as exc:  # the reply says what went wrong; the supervisor goes on
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                conn.sendall(json.dumps(reply).encode())

    def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd.get("op")
        if op == "inject":
            receiver = self.table.latest_toward(str(cmd["to"]), int(cmd["port"]))
            if receiver is None:
                return {"ok": False, "error": f"no flow toward {cmd['to']} with port {cmd['port']} seen"}
            expected = self.table.expected_by(receiver)
            assert expected is not None
            seq = (expected + int(cmd.get("offset", 0))) % 2**32
            sent = self.send(
                (receiver[2], receiver[3]),
                (receiver[0], receiver[1]),
                str(cmd["flags"]),
                seq,
                why=str(cmd.get("why", "inject")),
            )
            return {"ok": True, "sent": sent, "expected": expected}
        if op == "clamp":
            self.clamp_s = int(cmd["seconds"])
            self.record("clamp", seconds=self.clamp_s)
            self.clamp()
            return {"ok": True}
        if op == "ping":
            return {"ok": True}
        if op == "open":
            run(["nft", "delete", "table", "inet", GATE_TABLE])
            self.record("open")
            return {"ok": True}
        if op == "flush":
            run(["conntrack", "-F"])
            self.record("flush")
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def shut_down(self) -> None:
        self.stop.set()
        for dump in self.dumps.values():
            with contextlib.suppress(ProcessLookupError):
                dump.send_signal(signal.SIGINT)
        for dump in self.dumps.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                dump.wait(timeout=5)
        for copy in self.copies:
            copy.join(timeout=5)  # every packet tcpdump wrote is in the file


def append_pcap(stream: Any, path: Path, skip: int) -> None:
    """tcpdump's output, after its first `skip` bytes, onto the end of the capture file."""
    with path.open("ab", buffering=0) as out:
        while skip > 0:
            head = stream.read(skip)
            if not head:
                return
            skip -= len(head)
        while chunk := stream.read1(65536):
            out.write(chunk)


def interface_of(address: str) -> str | None:
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3].split("/")[0] == address:
            return fields[1].split("@")[0]
    return None


def relay(stream: Any) -> None:
    for line in stream:
        sys.stderr.write(line.decode(errors="replace"))
        sys.stderr.flush()


def warm_up_scapy() -> None:
    with contextlib.suppress(Exception):
        flowtable.forge("10.0.0.1", 1, "10.0.0.2", 2, "R", 0)


def run(command: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout


def control(text: str) -> int:
    """`ctl`: one command to the running supervisor; its JSON reply on stdout, exit 1 if not ok."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(SOCKET)
        sock.sendall(text.encode())
        sock.shutdown(socket.SHUT_WR)
        reply = sock.recv(65536).decode()
    print(reply)
    return 0 if json.loads(reply).get("ok") else 1


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("capture", "serve", "ctl"):
        print("usage: middlebox.py capture|serve|ctl JSON", file=sys.stderr)
        return 2
    if argv[0] == "ctl":
        return control(argv[1])
    config = json.loads(argv[1])
    supervisor = Supervisor(config)
    if argv[0] == "serve":
        try:
            supervisor.start_serving(config["rules"], bool(config.get("gated")))
        except RuntimeError as exc:
            print(f"tcpscen router: {exc}", file=sys.stderr, flush=True)
            return 1
        return 0
    done = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        supervisor.start_captures(bool(config.get("wait_for_interfaces")))
    except RuntimeError as exc:
        print(f"tcpscen router: {exc}", file=sys.stderr, flush=True)
        supervisor.shut_down()
        return 1
    print(READY, flush=True)
    while not done.wait(0.5):
        pass
    supervisor.shut_down()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
