"""The real-kernel cases: each builds its own a — w — b namespaces, runs one situation, and
returns a `CaseResult` (pcaps, agent events, fault times, ss, counters) dumped to meta.json.

`run_case(name)` is the entry point, for the tests here and for verdict tests that want a real
capture of a known situation. Every case takes a few seconds: small tcp_retries2, user
timeouts of 2-3 s, tcp_syn_retries 1-2, keepalive 1 s / 1 s / 3.
"""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.pcap.reader import ACK, SYN, read_tcp
from tests.helpers.netns import B_ADDR, SERVER_PORT, W_A_ADDR, App, CaseResult, Direction, Topology

CONNECT = f"{B_ADDR}:{SERVER_PORT}"
# Cut this long after `connected`: between two 200 ms sends, after the RTT estimate settled.
LEAD_S = 1.1
ABORT_WAIT_S = 25.0


@dataclass(frozen=True)
class Case:
    name: str
    summary: str
    body: Callable[[Topology], dict[str, float]]  # runs the case; returns named moments (marks)
    settings: dict[str, Any]


def start_pair(
    topo: Topology, client: dict[str, Any], server: dict[str, Any] | None = None
) -> tuple[App, App]:
    """Captures on both ends, a server in b, then the client in a (captures first: no lost SYN)."""
    topo.capture("a")
    topo.capture("b")
    srv = topo.agent("b", "server", {"role": "server", "port": SERVER_PORT, "mode": "sink", **(server or {})})
    cli = topo.agent("a", "client", {"role": "client", "connect": CONNECT, **client})
    return cli, srv


def sender(
    every_ms: float = 200, size: int = 100, send_after_s: float = 0.0, count: int | None = None, **socket: Any
) -> dict[str, Any]:
    """A client config in send mode; keyword arguments beyond these are socket options."""
    config: dict[str, Any] = {
        "mode": "send",
        "every_ms": every_ms,
        "size": size,
        "send_after_s": send_after_s,
    }
    if count is not None:
        config["count"] = count
    if socket:
        config["socket"] = socket
    return config


def cut_while_sending(
    retries2: int | None = None, user_timeout_ms: int | None = None, one_way: Direction | None = None
) -> Callable[[Topology], dict[str, float]]:
    """Facts 1, 2, 9: a client sending every 200 ms, then a cut in w; wait for ETIMEDOUT."""

    def body(topo: Topology) -> dict[str, float]:
        if retries2 is not None:
            topo.sysctl("a", **{"net.ipv4.tcp_retries2": retries2})
        socket = {"user_timeout_ms": user_timeout_ms} if user_timeout_ms else {}
        cli, _ = start_pair(topo, sender(**socket))
        cli.wait_for("connected", 5)
        time.sleep(LEAD_S)
        topo.cut(one_way=one_way)
        cli.wait_for("error", ABORT_WAIT_S)
        time.sleep(0.2)
        return {}

    return body


def capture_starts_mid_backoff(topo: Topology) -> dict[str, float]:
    """Fact 1 seen late: tcp_retries2=5, a client sending every 200 ms, a cut, and a's capture
    started only 2 s later (as when tcpdump is started because an app hung)."""
    topo.sysctl("a", **{"net.ipv4.tcp_retries2": 5})
    topo.capture("b")
    topo.agent("b", "server", {"role": "server", "port": SERVER_PORT, "mode": "sink"})
    cli = topo.agent("a", "client", {"role": "client", "connect": CONNECT, **sender()})
    cli.wait_for("connected", 5)
    time.sleep(LEAD_S)
    topo.cut()
    time.sleep(2.0)
    topo.capture("a")
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {}


def rto_min_1s(topo: Topology) -> dict[str, float]:
    """Fact 1 with a slower RTO: a route rto_min of 1 s in a; the budget still counts 200 ms units."""
    topo.sysctl("a", **{"net.ipv4.tcp_retries2": 3})
    topo.ip("a", "route", "replace", "default", "via", W_A_ADDR, "rto_min", "1000ms")
    cli, _ = start_pair(topo, sender())
    cli.wait_for("connected", 5)
    time.sleep(LEAD_S)
    topo.cut()
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {}


def rto_ceiling(ms: int, retries2: int, on_socket: bool) -> Callable[[Topology], dict[str, float]]:
    """Fact 1 under a lower RTO ceiling (kernels from 6.15): tcp_rto_max_ms in a's namespace,
    or TCP_RTO_MAX_MS on the client's socket; a cut while sending; wait for ETIMEDOUT."""

    def body(topo: Topology) -> dict[str, float]:
        if not Path("/proc/sys/net/ipv4/tcp_rto_max_ms").exists():
            return {"unsupported": 1.0}  # a kernel before 6.15: the test skips
        topo.sysctl("a", **{"net.ipv4.tcp_retries2": retries2})
        if not on_socket:
            topo.sysctl("a", **{"net.ipv4.tcp_rto_max_ms": ms})
        cli, _ = start_pair(topo, sender(**({"rto_max_ms": ms} if on_socket else {})))
        cli.wait_for("connected", 5)
        time.sleep(LEAD_S)
        topo.cut()
        cli.wait_for("error", ABORT_WAIT_S)
        time.sleep(0.2)
        return {}

    return body


def syn_blackhole(
    syn_retries: int, user_timeout_ms: int | None = None
) -> Callable[[Topology], dict[str, float]]:
    """Fact 3: connect through a cut that was there before the client started (with a user
    timeout set before connect(), which clamps the SYN's timer)."""

    def body(topo: Topology) -> dict[str, float]:
        topo.sysctl("a", **{"net.ipv4.tcp_syn_retries": syn_retries})
        topo.cut()
        socket = {"socket": {"user_timeout_ms": user_timeout_ms}} if user_timeout_ms else {}
        cli, _ = start_pair(topo, {"mode": "idle", **socket})
        cli.wait_for("error", ABORT_WAIT_S)
        time.sleep(0.2)
        return {"syn_linear_timeouts": float(topo.read_sysctl("a", "net.ipv4.tcp_syn_linear_timeouts"))}

    return body


def synack_unanswered(synack_retries: int) -> Callable[[Topology], dict[str, float]]:
    """Fact 3b: w drops every a->b segment without SYN, so the handshake's ACK never arrives and
    b retransmits its SYN-ACK. After b must have given up, w heals and the client sends: an RST
    from b then proves that the half-open request was dropped."""
    expiry_s = float(2 ** (synack_retries + 1) - 1)  # SYN-ACK timer 1 s, doubling

    def body(topo: Topology) -> dict[str, float]:
        topo.sysctl("b", **{"net.ipv4.tcp_synack_retries": synack_retries})
        topo.rule('iifname "to-a" tcp flags & syn != syn drop', kind="drop_client_acks")
        cli, _ = start_pair(topo, sender(send_after_s=expiry_s + 1.0, every_ms=200))
        connected = cli.wait_for("connected", 5)
        time.sleep(max(0.0, connected.t + expiry_s + 0.5 - time.time()))
        topo.heal()
        cli.wait_for("error", 5)
        time.sleep(0.2)
        return {"expected_expiry_s": expiry_s}

    return body


def keepalive_answered_then_cut(topo: Topology) -> dict[str, float]:
    """Fact 4: an idle client with keepalive 1 s / 1 s / 3; the first two probes are answered."""
    socket = {"keepalive": True, "keepidle_s": 1, "keepintvl_s": 1, "keepcnt": 3}
    cli, _ = start_pair(topo, {"mode": "idle", "socket": socket})
    connected = cli.wait_for("connected", 5)
    time.sleep(max(0.0, connected.t + 2.5 - time.time()))  # probes at +1 s and +2 s get answers
    topo.cut()
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {}


def keepalive_kept_alive(topo: Topology) -> dict[str, float]:
    """Fact 4 without a cut: an idle client with keepalive 2 s / 1 s / 3 whose probes are all
    answered; each answer starts the 2 s again, so they come 2 s apart, not 1 s."""
    socket = {"keepalive": True, "keepidle_s": 2, "keepintvl_s": 1, "keepcnt": 3}
    cli, _ = start_pair(topo, {"mode": "idle", "socket": socket})
    connected = cli.wait_for("connected", 5)
    time.sleep(max(0.0, connected.t + 7.0 - time.time()))  # probes at about +2, +4 and +6 s
    return {}


def keepalive_outage_healed(topo: Topology) -> dict[str, float]:
    """Fact 4 through an outage that heals: keepalive 2 s / 1 s / 5, cut before the first probe,
    healed after the second: two probes 1 s apart unanswered, then answered ones 2 s apart."""
    socket = {"keepalive": True, "keepidle_s": 2, "keepintvl_s": 1, "keepcnt": 5}
    cli, _ = start_pair(topo, {"mode": "idle", "socket": socket})
    connected = cli.wait_for("connected", 5)
    time.sleep(max(0.0, connected.t + 1.0 - time.time()))
    topo.cut()
    time.sleep(2.5)  # probes at about +2 and +3 s are lost
    topo.heal()
    time.sleep(max(0.0, connected.t + 9.0 - time.time()))
    return {}


def keepalive_both_one_way(topo: Topology) -> dict[str, float]:
    """Fact 4 with both ends probing and a->b cut after the handshake: the client (3 s / 1 s / 3)
    gets the server's probes (1 s / 1 s / 10) and answers them into the cut; its own probes are
    never answered, and the server's probes do not restart its count."""
    cli_socket = {"keepalive": True, "keepidle_s": 3, "keepintvl_s": 1, "keepcnt": 3}
    srv_socket = {"keepalive": True, "keepidle_s": 1, "keepintvl_s": 1, "keepcnt": 10}
    cli, _ = start_pair(topo, {"mode": "idle", "socket": cli_socket}, {"socket": srv_socket})
    cli.wait_for("connected", 5)
    time.sleep(0.3)
    topo.cut(one_way="a->b")
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {}


def icmp_on_connect(topo: Topology) -> dict[str, float]:
    """Fact 5: w answers the client's SYN with ICMP host-unreachable."""
    topo.reject_icmp("host-unreachable", direction="a->b")
    cli, _ = start_pair(topo, {"mode": "idle"})
    cli.wait_for("error", 10)
    time.sleep(0.2)
    return {}


def capture_stops_while_retrying(topo: Topology) -> dict[str, float]:
    """Fact 6: the default tcp_retries2 (15, 924.6 s); the case ends 3 s after the cut."""
    cli, _ = start_pair(topo, sender())
    cli.wait_for("connected", 5)
    time.sleep(LEAD_S)
    cut = topo.cut()
    time.sleep(max(0.0, cut.after + 3.0 - time.time()))
    return {"capture_stopped": time.time()}  # result() takes ss, then stops the captures


def one_write_then_cut(user_timeout_ms: int | None = None) -> Callable[[Topology], dict[str, float]]:
    """Fact 7a: exactly one 100-byte segment in flight when the link is already cut. With a user
    timeout, the abort tells whether the tail-loss probe started the clock (retrans_stamp)."""

    def body(topo: Topology) -> dict[str, float]:
        socket = {"user_timeout_ms": user_timeout_ms} if user_timeout_ms else {}
        cli, _ = start_pair(topo, sender(send_after_s=LEAD_S + 0.3, size=100, count=1, **socket))
        cli.wait_for("connected", 5)
        time.sleep(LEAD_S)
        topo.cut()
        if user_timeout_ms:
            cli.wait_for("error", ABORT_WAIT_S)
            time.sleep(0.2)
        else:
            cli.wait_for("sent", 5)
            time.sleep(3.0)
        return {}

    return body


def nagle_writes_while_cut(topo: Topology) -> dict[str, float]:
    """Fact 7b: small writes every 50 ms with Nagle on; after the cut they queue behind the head."""
    cli, _ = start_pair(topo, sender(every_ms=50, size=100, nodelay=False))
    cli.wait_for("connected", 5)
    time.sleep(LEAD_S - 0.025)  # between two writes
    topo.cut()
    time.sleep(3.0)
    return {}


def start_filling(topo: Topology, server_mode: str) -> tuple[App, App]:
    """Facts 8 and 11: a client writing 1000 B every 10 ms (tcp_retries2=3, a 16 KB send
    buffer) to a server with a 32 KB receive buffer, so that its window closes while it does
    not read."""
    topo.sysctl("b", **{"net.ipv4.tcp_rmem": "4096 32768 32768"})
    topo.sysctl("a", **{"net.ipv4.tcp_retries2": 3, "net.ipv4.tcp_wmem": "4096 16384 16384"})
    return start_pair(topo, sender(every_ms=10, size=1000), server={"mode": server_mode})


def zero_window(topo: Topology) -> dict[str, float]:
    """Fact 8: a server that never reads, with a small receive buffer; tcp_retries2=3 in a shows
    that answered zero-window probes never time out."""
    cli, _ = start_filling(topo, "hold")
    cli.wait_for("blocked", 5)
    time.sleep(6.0)
    return {}


def zero_window_then_cut(topo: Topology) -> dict[str, float]:
    """Fact 11: as zero_window, then a cut while the client probes: tcp_retries2=3 unanswered
    zero-window probes, and ETIMEDOUT at the probe timer's next expiry."""
    cli, _ = start_filling(topo, "hold")
    cli.wait_for("blocked", 5)
    time.sleep(2.0)
    topo.cut()
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {}


def segment_blackholed(topo: Topology) -> dict[str, float]:
    """Fast retransmissions, then the timer's: a client writing 10 kB every 5 ms, tcp_retries2=5,
    and w dropping every send of one segment 100 kB into the stream (its seq from the client's
    SYN in a's capture). The server's SACKs for the data behind it bring fast retransmissions
    first, an RTT apart; then the timer backs off from its RTO to the abort."""
    topo.sysctl("a", **{"net.ipv4.tcp_retries2": 5})
    cli, _ = start_pair(topo, sender(every_ms=5, size=10_000, send_after_s=0.3))
    cli.wait_for("connected", 5)
    seq = (_client_isn(topo) + 1 + 100_000) % 2**32
    seq = seq if seq + 1447 < 2**32 else 0  # a range that does not wrap
    topo.rule(f'iifname "to-a" tcp sequence {seq}-{seq + 1447} drop', kind="drop_one_segment")
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {"dropped_seq": float(seq)}


def pmtu_black_hole(probing: int) -> Callable[[Topology], dict[str, float]]:
    """A path-MTU black hole: MTU 1280 on w's link to b, its ICMP fragmentation-needed dropped;
    the client (tcp_retries2=5, one MSS per packet) writes 3000 bytes every 500 ms, so its
    1448-byte segments vanish and the 104-byte tail passes. With tcp_mtu_probing=1 the kernel
    shrinks the segments at the first timer fire past tcp_retries1's 3 s and goes on; with 0 it
    ends in ETIMEDOUT."""

    def body(topo: Topology) -> dict[str, float]:
        topo.sysctl("a", **{"net.ipv4.tcp_retries2": 5, "net.ipv4.tcp_mtu_probing": probing})
        topo.ip("a", "link", "set", "eth0", "gso_max_segs", "1")
        topo.mtu_black_hole(1280)
        cli, _ = start_pair(topo, sender(every_ms=500, size=3000, send_after_s=0.5))
        cli.wait_for("connected", 5)
        if probing:
            time.sleep(6.0)  # past the shrink (about 3.7 s after connected) and some data after
        else:
            cli.wait_for("error", ABORT_WAIT_S)
            time.sleep(0.2)
        return {}

    return body


def head_not_most_retransmitted(topo: Topology) -> dict[str, float]:
    """The timer follows the oldest unacknowledged segment: a client writing 4 kB every 10 ms,
    tcp_retries2=3, one MSS per packet (gso_max_segs 1: the segments behind a lost one get
    through and are SACKed, so RACK re-sends it every RTT or so); w drops every send of the
    segment 100 kB into the stream until +1.9 s (RACK's, then two of the timer's; its third, at
    about +2.2 s, gets through: many more retransmissions than a cut leaves the head), then a
    full cut at +2.8 s. The head at the cut is not the most-retransmitted segment."""
    topo.sysctl("a", **{"net.ipv4.tcp_retries2": 3})
    topo.ip("a", "link", "set", "eth0", "gso_max_segs", "1")
    cli, _ = start_pair(topo, sender(every_ms=10, size=4096, send_after_s=0.3))
    connected = cli.wait_for("connected", 5)
    seq = (_client_isn(topo) + 1 + 25 * 4096) % 2**32  # where a write (one segment, or a TSO burst) starts
    seq = seq if seq + 1447 < 2**32 else 0  # a range that does not wrap
    topo.rule(f'iifname "to-a" tcp sequence {seq}-{seq + 1447} drop', kind="drop_one_segment")
    time.sleep(max(0.0, connected.t + 1.9 - time.time()))
    topo.heal()
    time.sleep(max(0.0, connected.t + 2.8 - time.time()))
    topo.cut()
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {"dropped_seq": float(seq)}


def _seq_range(lo: int, hi: int) -> str:
    """An nft set of sequence numbers from lo to hi, split where it wraps past 2**32."""
    lo, hi = lo % 2**32, hi % 2**32
    return f"{{ {lo}-{hi} }}" if lo <= hi else f"{{ {lo}-{2**32 - 1}, 0-{hi} }}"


def _client_isn(topo: Topology) -> int:
    """The client's SYN's seq from a's capture, waiting for tcpdump to write it (a loaded machine)."""
    deadline = time.monotonic() + 3.0
    while True:
        syns = [p for p in read_tcp(topo.out_dir / "a.pcap") if p.flags & SYN and not p.flags & ACK]
        if syns:
            return syns[0].seq
        if time.monotonic() > deadline:
            raise RuntimeError("a.pcap holds no SYN 3 s after the client connected")
        time.sleep(0.05)


def one_fast_then_timer(topo: Topology) -> dict[str, float]:
    """One fast retransmission, then the timer's: a client writing 1000 B every 5 ms from 0.3 s
    after connecting (each write one segment, acknowledged within the 5 ms; the rules are in by
    then), tcp_retries2=3; w drops every send of the 10th segment and all a->b data after the
    11th. The server's one SACK, for the 11th, makes the client re-send the head at once (RACK);
    then no ACK comes and the timer backs off from it. The budget counts from that re-send."""
    topo.sysctl("a", **{"net.ipv4.tcp_retries2": 3})
    topo.capture("a", snaplen=128)
    topo.capture("b", snaplen=128)
    topo.agent("b", "server", {"role": "server", "port": SERVER_PORT, "mode": "sink"})
    config = sender(every_ms=5, size=1000, send_after_s=0.3)
    cli = topo.agent("a", "client", {"role": "client", "connect": CONNECT, **config})
    cli.wait_for("connected", 5)
    head = _client_isn(topo) + 1 + 9 * 1000
    topo.rule(f'iifname "to-a" tcp sequence {head % 2**32} drop', kind="drop_one_segment")
    topo.rule(f'iifname "to-a" tcp sequence {_seq_range(head + 1001, head + 10**8)} drop', kind="cut_after")
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {"dropped_seq": float(head % 2**32)}


def duplicated_then_cut(topo: Topology) -> dict[str, float]:
    """Every packet duplicated both ways (`relay.py` in w, 1 ms each way), then a cut: a client
    sending every 200 ms, tcp_retries2=3, the server echoing. Each side's capture holds every
    packet of the other twice and its own once: the receiver's copies read as retransmissions
    (as in Wireshark), the sender's own are only the kernel's."""
    topo.sysctl("a", **{"net.ipv4.tcp_retries2": 3})
    both = {"delay_ms": 1, "duplicate": 1.0}
    relay = topo.relay([{"a->b": both, "b->a": both}, {"a->b": {"cut": True}, "b->a": {"cut": True}}])
    cli, _ = start_pair(topo, sender(), {"mode": "echo"})
    cli.wait_for("connected", 5)
    time.sleep(LEAD_S)
    relay.signal(signal.SIGUSR1)
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {}


def keepalive_duplicated_then_cut(topo: Topology) -> dict[str, float]:
    """An idle client with keep-alive 1 s / 1 s / 3, every packet duplicated both ways (1 ms),
    then a cut at +2.5 s: the server's capture holds each answered probe twice (the network's
    copies, a few µs apart), the client's each answer twice; then three probes unanswered, the
    RST."""
    socket = {"keepalive": True, "keepidle_s": 1, "keepintvl_s": 1, "keepcnt": 3}
    both = {"delay_ms": 1, "duplicate": 1.0}
    relay = topo.relay([{"a->b": both, "b->a": both}, {"a->b": {"cut": True}, "b->a": {"cut": True}}])
    cli, _ = start_pair(topo, {"mode": "idle", "socket": socket})
    connected = cli.wait_for("connected", 5)
    time.sleep(max(0.0, connected.t + 2.5 - time.time()))  # probes at +1 s and +2 s get answers
    relay.signal(signal.SIGUSR1)
    cli.wait_for("error", ABORT_WAIT_S)
    time.sleep(0.2)
    return {}


def fins_cross(topo: Topology) -> dict[str, float]:
    """Both ends close: the client at +0.5 s, the server at +0.7 s; w drops the client's FINs
    until after the server's left, so each FIN leaves before its sender has the other's (as
    when both are in flight at once). The client's FIN gets through on its retransmission."""
    client = {"mode": "close", "close_after_s": 0.5}
    cli, _ = start_pair(topo, client, server={"mode": "close-first", "close_after_s": 0.7})
    connected = cli.wait_for("connected", 5)
    topo.rule('iifname "to-a" tcp flags & fin == fin drop', kind="drop_client_fins")
    time.sleep(max(0.0, connected.t + 0.9 - time.time()))
    topo.heal()
    time.sleep(1.5)  # the client's FIN retransmission, then both ends in TIME_WAIT
    return {}


def zero_window_twice_then_cut(topo: Topology) -> dict[str, float]:
    """Fact 11 with the window opening once between: the server stops (SIGSTOP) until its
    window closes, goes on (SIGCONT) and reads, stops again, and is cut off; the client's second
    run of probes starts its backoff again. tcp_retries2=3."""
    cli, srv = start_filling(topo, "sink")
    cli.wait_for("connected", 5)
    time.sleep(0.3)
    srv.signal(signal.SIGSTOP)
    time.sleep(4.0)  # probes, the backoff grows to its cap
    srv.signal(signal.SIGCONT)
    time.sleep(1.0)  # the window opens, data flows
    srv.signal(signal.SIGSTOP)
    time.sleep(1.5)
    topo.cut()
    try:
        cli.wait_for("error", ABORT_WAIT_S)
    finally:
        srv.signal(signal.SIGCONT)  # so that it can be stopped
    time.sleep(0.2)
    return {}


# A client that writes five times 200 ms apart, says "go" (the cut comes then), writes once
# more into the cut and ends its side: shutdown() (then waits in recv) or close().
_FIN_CLIENT = """
import errno, json, socket, sys, time
def emit(name, **fields):
    print(json.dumps({"event": name, "t": time.time(), **fields}), flush=True)
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
emit("connected")
for _ in range(5):
    s.send(b"x" * 100)
    time.sleep(0.2)
emit("go")
time.sleep(0.3)
s.send(b"y" * 100)
if sys.argv[3] == "shutdown":
    s.shutdown(socket.SHUT_WR)
    try:
        s.recv(10)
        emit("eof")
    except OSError as e:
        emit("error", errno=errno.errorcode.get(e.errno, str(e.errno)), message=str(e))
else:
    s.close()
    emit("closed")
"""


def fin_into_cut(how: str) -> Callable[[Topology], dict[str, float]]:
    """Unacknowledged data and a FIN into a cut, tcp_retries2=5, tcp_orphan_retries=2: after
    shutdown() the app gets ETIMEDOUT at tcp_retries2's end; after close() the orphan is gone at
    tcp_orphan_retries' end (mark `gone`: the socket first missing from ss, polled every 0.1 s)."""

    def body(topo: Topology) -> dict[str, float]:
        topo.sysctl("a", **{"net.ipv4.tcp_retries2": 5, "net.ipv4.tcp_orphan_retries": 2})
        topo.capture("a")
        topo.capture("b")
        topo.agent("b", "server", {"role": "server", "port": SERVER_PORT, "mode": "sink"})
        argv = ["python3", "-c", _FIN_CLIENT, B_ADDR, str(SERVER_PORT), how]
        cli = topo.command("a", "client", argv)
        cli.wait_for("go", 5)
        topo.cut()
        deadline = time.time() + ABORT_WAIT_S
        while time.time() < deadline and f"{B_ADDR}:{SERVER_PORT}" in topo.ss("a"):
            time.sleep(0.1)
        gone = time.time()
        if how == "shutdown":
            cli.wait_for("error", 5)
        time.sleep(0.2)
        return {"gone": gone}

    return body


# A server that sends 100 bytes at +1.0 s and +1.3 s after accepting, reporting each send's errno.
_LATE_SENDER = """
import errno, json, socket, sys, time
def emit(name, **fields):
    print(json.dumps({"event": name, "t": time.time(), **fields}), flush=True)
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(1)
emit("listening")
s, _ = l.accept()
start = time.time()
for at in (1.0, 1.3):
    time.sleep(max(0.0, start + at - time.time()))
    try:
        s.send(b"x" * 100)
        emit("sent")
    except OSError as e:
        emit("error", errno=errno.errorcode.get(e.errno, str(e.errno)), message=str(e))
"""


# A client that close()s 0.3 s after connecting (the agent's close mode shutdown()s and reads on
# until EOF: its socket takes the data).
_CLOSER = """
import json, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print(json.dumps({"event": "connected", "t": time.time()}), flush=True)
time.sleep(0.3)
s.close()
print(json.dumps({"event": "closed", "t": time.time()}), flush=True)
time.sleep(2)
"""


def data_after_close(topo: Topology) -> dict[str, float]:
    """The client close()s at +0.3 s; the server sends at +1.0 s: the client's orphan, still in
    FIN_WAIT2 (mark `fin_wait2`: ss at +0.8 s), answers with an RST without ACK, the shape of a
    host with no socket; the server's next send gets EPIPE."""
    topo.capture("a")
    topo.capture("b")
    srv = topo.command("b", "server", ["python3", "-c", _LATE_SENDER, B_ADDR, str(SERVER_PORT)])
    srv.wait_for("listening", 5)
    cli = topo.command("a", "client", ["python3", "-c", _CLOSER, B_ADDR, str(SERVER_PORT)])
    connected = cli.wait_for("connected", 5)
    time.sleep(max(0.0, connected.t + 0.8 - time.time()))
    fin_wait2 = any("FIN-WAIT-2" in line and CONNECT in line for line in topo.ss("a").splitlines())
    srv.wait_for("error", 5)
    time.sleep(0.2)
    return {"fin_wait2": float(fin_wait2)}


def nat_forgot_reject(topo: Topology) -> dict[str, float]:
    """w masquerades a with a conntrack established timeout of 3 s and tcp_loose=0, and answers
    a forgotten flow with `reject with tcp reset`: the client's second send, 4.5 s after its
    first, gets an RST forged with the server's address; the server (mark `server_established`:
    ss after the client's error) never sees it."""
    topo.sysctl(
        "w",
        **{
            "net.netfilter.nf_conntrack_tcp_timeout_established": 3,
            "net.netfilter.nf_conntrack_tcp_loose": 0,
        },
    )
    topo.masquerade()
    topo.rule("ct state invalid reject with tcp reset", kind="reject-tcp-reset")
    cli, _ = start_pair(topo, sender(every_ms=4500, count=2))
    cli.wait_for("error", 10)
    established = any(line.startswith("ESTAB") for line in topo.ss("b").splitlines())
    time.sleep(0.2)
    return {"server_established": float(established)}


def reject_own_server(topo: Topology) -> dict[str, float]:
    """The server's own namespace gets `reject with tcp reset` on its input 1 s into a client's
    sends (every 300 ms): the client's next segment is answered by the server's own netfilter
    with an RST of no socket's shape (no ACK, seq = the client's ACK), which leaves b and is in
    b's own capture; the server's socket (mark `server_established`: ss after the client's
    error) never learns."""
    cli, _ = start_pair(topo, sender(every_ms=300))
    connected = cli.wait_for("connected", 5)
    time.sleep(max(0.0, connected.t + 1.0 - time.time()))
    chain = "{ type filter hook input priority filter; policy accept; }"
    topo.nft_in(
        "b",
        f"add table inet own\nadd chain inet own input {chain}\n"
        f"add rule inet own input tcp dport {SERVER_PORT} reject with tcp reset\n",
    )
    cli.wait_for("error", 5)
    established = any(line.startswith("ESTAB") for line in topo.ss("b").splitlines())
    time.sleep(0.2)
    return {"server_established": float(established)}


# A client bound to a fixed port (SO_REUSEADDR): it sends 2 bytes, reads the echo, says "go",
# close()s 0.3 s later, and 0.35 s after that connects again from the same port.
_REBINDER = """
import errno, json, socket, sys, time
def emit(name, **fields):
    print(json.dumps({"event": name, "t": time.time(), **fields}), flush=True)
def connect():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 40000))
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(b"x\\n")
    s.recv(10)
    return s
s = connect()
emit("go")
time.sleep(0.3)
s.close()
emit("closed")
time.sleep(0.35)
try:
    s = connect()
    emit("connected")
    s.close()
except OSError as e:
    emit("error", errno=errno.errorcode.get(e.errno, str(e.errno)), message=str(e))
time.sleep(0.3)
"""


def last_ack_reused(topo: Topology) -> dict[str, float]:
    """w drops the client's pure ACKs while it closes first, so the server's FIN is never
    acknowledged and its socket stays in LAST_ACK; the rule goes 0.3 s after the close, and the
    client connects again from the same port: the SYN meets the LAST_ACK socket (challenge ACK),
    the client's RST for it ends that socket, and the SYN sent again is accepted."""
    topo.capture("a")
    topo.capture("b")
    topo.agent("b", "server", {"role": "server", "port": SERVER_PORT, "mode": "echo"})
    cli = topo.command("a", "client", ["python3", "-c", _REBINDER, B_ADDR, str(SERVER_PORT)])
    cli.wait_for("go", 5)
    topo.rule('iifname "to-a" tcp flags == ack drop', kind="drop_pure_acks")
    closed = cli.wait_for("closed", 5)
    time.sleep(max(0.0, closed.t + 0.3 - time.time()))
    topo.heal()
    cli.wait_for("connected", 5)
    time.sleep(0.3)
    return {}


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("retries2_3", "send every 200 ms, cut; tcp_retries2=3", cut_while_sending(3), {"retries2": 3}),
        Case("retries2_4", "send every 200 ms, cut; tcp_retries2=4", cut_while_sending(4), {"retries2": 4}),
        Case(
            "retries2_3_rto_min_1s",
            "as retries2_3 with a route rto_min of 1 s",
            rto_min_1s,
            {"retries2": 3, "rto_min_ms": 1000},
        ),
        Case(
            "capture_starts_mid_backoff",
            "send every 200 ms, cut; tcp_retries2=5; a's capture from cut+2 s",
            capture_starts_mid_backoff,
            {"retries2": 5, "capture_after_cut_s": 2.0},
        ),
        Case(
            "user_timeout_3000",
            "send every 200 ms, cut; TCP_USER_TIMEOUT=3000",
            cut_while_sending(user_timeout_ms=3000),
            {"user_timeout_ms": 3000},
        ),
        Case(
            "user_timeout_2000",
            "send every 200 ms, cut; TCP_USER_TIMEOUT=2000",
            cut_while_sending(user_timeout_ms=2000),
            {"user_timeout_ms": 2000},
        ),
        Case("syn_retries_1", "connect into a cut; tcp_syn_retries=1", syn_blackhole(1), {"syn_retries": 1}),
        Case("syn_retries_2", "connect into a cut; tcp_syn_retries=2", syn_blackhole(2), {"syn_retries": 2}),
        Case(
            "syn_user_timeout_2500",
            "connect into a cut; tcp_syn_retries=6, TCP_USER_TIMEOUT=2500 before connect()",
            syn_blackhole(6, user_timeout_ms=2500),
            {"syn_retries": 6, "user_timeout_ms": 2500},
        ),
        Case(
            "synack_retries_1",
            "handshake ACK dropped; tcp_synack_retries=1",
            synack_unanswered(1),
            {"synack_retries": 1},
        ),
        Case(
            "synack_retries_2",
            "handshake ACK dropped; tcp_synack_retries=2",
            synack_unanswered(2),
            {"synack_retries": 2},
        ),
        Case(
            "keepalive_answered_then_cut",
            "idle, keepalive 1/1/3, two probes answered, then cut",
            keepalive_answered_then_cut,
            {"keepidle_s": 1, "keepintvl_s": 1, "keepcnt": 3},
        ),
        Case(
            "keepalive_kept_alive",
            "idle, keepalive 2/1/3, every probe answered",
            keepalive_kept_alive,
            {"keepidle_s": 2, "keepintvl_s": 1, "keepcnt": 3},
        ),
        Case(
            "keepalive_outage_healed",
            "idle, keepalive 2/1/5, cut at +1 s, healed at +3.5 s",
            keepalive_outage_healed,
            {"keepidle_s": 2, "keepintvl_s": 1, "keepcnt": 5},
        ),
        Case(
            "rto_max_1000",
            "cut while sending, tcp_retries2=6, tcp_rto_max_ms=1000",
            rto_ceiling(1000, 6, on_socket=False),
            {"retries2": 6, "rto_max_ms": 1000},
        ),
        Case(
            "rto_max_socket_2000",
            "cut while sending, tcp_retries2=8, TCP_RTO_MAX_MS=2000 on the socket",
            rto_ceiling(2000, 8, on_socket=True),
            {"retries2": 8, "rto_max_ms": 2000},
        ),
        Case(
            "keepalive_both_one_way",
            "both ends probe (client 3/1/3, server 1/1/10), a->b cut",
            keepalive_both_one_way,
            {"keepidle_s": 3, "keepintvl_s": 1, "keepcnt": 3},
        ),
        Case("icmp_host_unreachable", "connect answered by ICMP host-unreachable", icmp_on_connect, {}),
        Case(
            "capture_stops_while_retrying",
            "cut while sending, tcp_retries2=15; stop at cut+3 s",
            capture_stops_while_retrying,
            {"retries2": 15, "stop_after_cut_s": 3.0},
        ),
        Case("tlp_one_segment", "one 100-byte write into a cut", one_write_then_cut(), {}),
        Case(
            "tlp_one_segment_user_timeout_2000",
            "one 100-byte write into a cut; TCP_USER_TIMEOUT=2000",
            one_write_then_cut(2000),
            {"user_timeout_ms": 2000},
        ),
        Case(
            "tlp_nagle",
            "100-byte writes every 50 ms, Nagle on, cut",
            nagle_writes_while_cut,
            {"every_ms": 50, "nodelay": False},
        ),
        Case("zero_window", "server never reads; client fills its window", zero_window, {"retries2": 3}),
        Case(
            "zero_window_then_cut",
            "server never reads; window 0; cut while probing; tcp_retries2=3",
            zero_window_then_cut,
            {"retries2": 3},
        ),
        Case(
            "segment_blackholed",
            "10 kB every 5 ms; w drops every send of one segment; tcp_retries2=5",
            segment_blackholed,
            {"retries2": 5, "blackholed_at_byte": 100_000},
        ),
        Case(
            "pmtu_black_hole_probing0",
            "MTU 1280 on the path, its ICMP dropped; 3000 bytes every 500 ms; tcp_retries2=5",
            pmtu_black_hole(0),
            {"retries2": 5, "mtu_probing": 0, "mtu": 1280},
        ),
        Case(
            "pmtu_black_hole_probing1",
            "MTU 1280 on the path, its ICMP dropped; 3000 bytes every 500 ms; tcp_mtu_probing=1",
            pmtu_black_hole(1),
            {"retries2": 5, "mtu_probing": 1, "mtu": 1280},
        ),
        Case(
            "head_not_most_retransmitted",
            "4 kB every 10 ms; one segment dropped until +1.9 s, a cut at +2.8 s; tcp_retries2=3",
            head_not_most_retransmitted,
            {"retries2": 3},
        ),
        Case(
            "one_fast_then_timer",
            "1000 B every 5 ms; w drops the 10th segment and all a->b after the 11th; tcp_retries2=3",
            one_fast_then_timer,
            {"retries2": 3},
        ),
        Case(
            "duplicated_then_cut",
            "every packet duplicated both ways, then a cut; send every 200 ms, echo; tcp_retries2=3",
            duplicated_then_cut,
            {"retries2": 3, "duplicate": 1.0},
        ),
        Case(
            "keepalive_duplicated_then_cut",
            "idle, keepalive 1/1/3, every packet duplicated both ways, cut at +2.5 s",
            keepalive_duplicated_then_cut,
            {"keepidle_s": 1, "keepintvl_s": 1, "keepcnt": 3, "duplicate": 1.0},
        ),
        Case(
            "fins_cross",
            "client closes at +0.5 s, server at +0.7 s; the client's FIN held back until after",
            fins_cross,
            {"client_close_s": 0.5, "server_close_s": 0.7},
        ),
        Case(
            "zero_window_twice_then_cut",
            "server stops, goes on, stops again (window 0 twice), then a cut; tcp_retries2=3",
            zero_window_twice_then_cut,
            {"retries2": 3},
        ),
        Case(
            "fin_into_cut_shutdown",
            "data, a cut, more data, shutdown(); tcp_retries2=5, tcp_orphan_retries=2",
            fin_into_cut("shutdown"),
            {"retries2": 5, "orphan_retries": 2},
        ),
        Case(
            "fin_into_cut_close",
            "data, a cut, more data, close(); tcp_retries2=5, tcp_orphan_retries=2",
            fin_into_cut("close"),
            {"retries2": 5, "orphan_retries": 2},
        ),
        Case(
            "data_after_close",
            "client close()s at +0.3 s, the server sends at +1.0 s and +1.3 s",
            data_after_close,
            {"client_close_s": 0.3, "server_sends_s": [1.0, 1.3]},
        ),
        Case(
            "reject_own_server",
            "the server's own input chain rejects with tcp reset 1 s into sends every 300 ms",
            reject_own_server,
            {"every_ms": 300},
        ),
        Case(
            "nat_forgot_reject",
            "masquerade in w, conntrack timeout 3 s, tcp_loose=0, reject with tcp reset; sends 4.5 s apart",
            nat_forgot_reject,
            {"conntrack_timeout_s": 3, "every_ms": 4500},
        ),
        Case(
            "last_ack_reused",
            "the client's pure ACKs dropped while it closes first; it connects again from its port",
            last_ack_reused,
            {"client_port": 40000},
        ),
        Case(
            "ack_lost_one_way",
            "send every 200 ms, cut b->a only; tcp_retries2=3",
            cut_while_sending(3, one_way="b->a"),
            {"retries2": 3, "one_way": "b->a"},
        ),
    )
}


# A capture that lost packets (tcpdump's ring, on a loaded machine) is not the kernel's whole story:
# the case runs again in fresh namespaces.
CAPTURE_ATTEMPTS = 2


def run_case(name: str, out_dir: Path | None = None) -> CaseResult:
    """Run one case in fresh namespaces and return what it left (also in out_dir/meta.json)."""
    case = CASES[name]
    directory = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix=f"netns-{name}-"))
    for attempt in range(1, CAPTURE_ATTEMPTS + 1):
        with Topology(directory / f"attempt{attempt}" if attempt > 1 else directory) as topo:
            marks = case.body(topo)
            result = topo.result(name, {"summary": case.summary, **case.settings}, marks)
        if not result.dropped:
            break
    # Still lost packets: the tests read what there is, and `dropped` says why they may fail.
    return result
