"""What `ss -tanoi` prints, as typed samples: one `SocketSample` per socket per sample.

Each socket is a main line (state, Recv-Q, Send-Q, local and peer address, then, with `-o`,
`timer:(...)`) and, with `-i`, an indented line of `key:value` counters. The fields kept are the
ones that tell a disconnection story: the state, the timer (on: retransmission or SYN; keepalive;
timewait; persist: zero-window probes, or sends that fail locally), its time left and count
(retransmissions by the timer, or unanswered probes), rto, backoff, unacked, retrans
(outstanding/total), and the times since the last send, receive and ACK. For a listener, Recv-Q
is its accept queue and Send-Q its backlog.

The sampler's files (`backend/docker/sampler_loop.py`) hold many samples, each headed by its
wall-clock time; `read_sample_file` cuts them apart and drops one the container's death cut short.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal, cast

TimerKind = Literal["none", "on", "keepalive", "timewait", "persist", "off", "unknown"]
TIMER_KINDS: tuple[str, ...] = ("none", "on", "keepalive", "timewait", "persist", "off", "unknown")
STATES = (
    "LISTEN",
    "ESTAB",
    "SYN-SENT",
    "SYN-RECV",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "TIME-WAIT",
    "CLOSE-WAIT",
    "LAST-ACK",
    "CLOSING",
    "CLOSED",
    "UNCONN",
)
HEADER = "# tcpscen-ss"  # as sampler_loop writes them
END = "# end"

_TIMER = re.compile(r"timer:\((\w+),([^,)]*),(\d+)\)")
_TIME_LEFT = re.compile(r"^(?:(\d+)min)?(?:(\d+)(sec|\.))?(?:(\d+)ms)?$")
_HEAD = re.compile(r"^# tcpscen-ss boot=(\d+) t=([\d.]+) took=([\d.]+) rc=(-?\d+)$")


@dataclass(frozen=True, slots=True)
class SocketSample:
    """One socket in one sample. Times are epoch seconds (the captures' clock); counters absent
    from ss's line are 0 (ss leaves out the zero ones), times since an event None."""

    t: float
    boot: int
    state: str
    local: str  # "IP:PORT" as the pcap contract writes it ("[v6]:port"; IPv4-mapped as IPv4)
    peer: str
    recv_q: int  # a listener: connections waiting in its accept queue
    send_q: int  # a listener: its backlog
    timer: TimerKind = "none"
    timer_left_s: float | None = None
    timer_count: int = 0  # "on": retransmissions by the timer; keepalive, persist: probes out
    rto_ms: float | None = None
    backoff: int = 0
    unacked: int = 0
    retrans: int = 0  # retransmitted segments not yet acknowledged
    retrans_total: int = 0  # every retransmission of the connection's life
    lastsnd_ms: int | None = None
    lastrcv_ms: int | None = None
    lastack_ms: int | None = None
    line: int = 0  # its line in HOST.sockets.jsonl (1-based), once written

    @property
    def listening(self) -> bool:
        return self.state == "LISTEN"

    def describe(self) -> str:
        """As ss would say it, briefly: "ESTAB timer:(on,1.420s,3) rto:3200 backoff:4 retrans:1/5"."""
        words = [self.state]
        if self.timer != "none":
            left = f"{self.timer_left_s:.3f}s" if self.timer_left_s is not None else "?"
            words.append(f"timer:({self.timer},{left},{self.timer_count})")
        if self.listening:
            words.append(f"accept queue {self.recv_q}/{self.send_q}")
        if self.backoff:
            words.append(f"rto:{self.rto_ms:g} backoff:{self.backoff}")
        if self.retrans_total:
            words.append(f"retrans:{self.retrans}/{self.retrans_total}")
        if self.unacked and not self.listening:  # a listener's "unacked" is its accept queue again
            words.append(f"unacked:{self.unacked}")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class RawSample:
    """One sample as the sampler took it: when, on which boot, and what ss listed."""

    t: float  # the middle of ss's run
    boot: int
    ok: bool  # ss exited 0 (else it said nothing about the sockets)
    took_s: float
    sockets: list[SocketSample]


def time_left(text: str) -> float | None:
    """ss's timer time in seconds: "380ms", "1.632ms" (1.632 s: seconds, a dot, then
    milliseconds), "59sec", "1min5sec", "119min"; None if unreadable. iproute2's print_ms_timer."""
    text = text.strip()
    if not text:
        return 0.0  # ss prints nothing for a timer that is due now
    m = _TIME_LEFT.match(text)
    if m is None:
        return None
    minutes, secs, _, msecs = m.groups()
    return round(int(minutes or 0) * 60 + int(secs or 0) + int(msecs or 0) / 1000, 3)


def endpoint(text: str) -> str:
    """ss's "10.0.0.1:80", "[::1]:80", "[::ffff:10.0.0.1]:80", "10.0.0.1%eth0:80" as the pcap
    contract writes addresses: IPv4 bare, IPv6 compressed in brackets."""
    host, _, port = text.rpartition(":")
    host = host.split("%", 1)[0]
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        addr = ipaddress.ip_address(bare)
    except ValueError:
        return f"{host}:{port}"  # "*", "0.0.0.0" forms of listeners stay as ss wrote them
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return f"[{addr.compressed}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def parse_ss(text: str, t: float, boot: int) -> list[SocketSample]:
    """Every socket in one `ss -tanoi` listing (the header line and anything else skipped)."""
    out: list[SocketSample] = []
    main: list[str] | None = None
    for line in text.splitlines():
        if line[:1].isspace():
            if main is not None:
                out.append(_sample(main, line.split(), t, boot))
                main = None
            continue
        if main is not None:
            out.append(_sample(main, [], t, boot))
        fields = line.split()
        main = fields if len(fields) >= 5 and fields[0] in STATES and fields[1].isdigit() else None
    if main is not None:
        out.append(_sample(main, [], t, boot))
    return out


def _sample(main: list[str], info: list[str], t: float, boot: int) -> SocketSample:
    rest = " ".join(main[5:])
    timer: TimerKind = "none"
    left: float | None = None
    count = 0
    if m := _TIMER.search(rest):
        kind = m.group(1)
        timer = cast(TimerKind, kind if kind in TIMER_KINDS else "unknown")
        left, count = time_left(m.group(2)), int(m.group(3))
    values: dict[str, str] = {}
    for token in info:
        key, sep, value = token.partition(":")
        if sep and key not in values:
            values[key] = value
    retrans, _, total = values.get("retrans", "0/0").partition("/")
    return SocketSample(
        t=t,
        boot=boot,
        state=main[0],
        local=endpoint(main[3]),
        peer=endpoint(main[4]),
        recv_q=int(main[1]),
        send_q=int(main[2]) if main[2].isdigit() else 0,
        timer=timer,
        timer_left_s=left,
        timer_count=count,
        rto_ms=_number(values.get("rto")),
        backoff=_int(values.get("backoff")) or 0,
        unacked=_int(values.get("unacked")) or 0,
        retrans=_int(retrans) or 0,
        retrans_total=_int(total) or 0,
        lastsnd_ms=_int(values.get("lastsnd")),
        lastrcv_ms=_int(values.get("lastrcv")),
        lastack_ms=_int(values.get("lastack")),
    )


def read_sample_file(text: str) -> list[RawSample]:
    """The samples of one sampler file, in order; a block without its end line (the container
    died while ss ran) is left out, and so is anything before the first header."""
    out: list[RawSample] = []
    head: re.Match[str] | None = None
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith(HEADER):
            head, body = _HEAD.match(line), []
        elif line == END and head is not None:
            boot, started, took, rc = int(head[1]), float(head[2]), float(head[3]), int(head[4])
            t = round(started + took / 2, 6)  # as HOST.sockets.jsonl writes it
            ok = rc == 0
            sockets = parse_ss("\n".join(body), t, boot) if ok else []
            out.append(RawSample(t, boot, ok, took, sockets))
            head = None
        elif head is not None:
            body.append(line)
    return out


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
