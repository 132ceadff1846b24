#!/usr/bin/env python3
"""tcpscen built-in agent: a small TCP server or client that reports what the application sees.

Usage: ``python3 agent.py '<json config>'``. Every event is one JSON object per line on stdout.
Stdlib only, so the same file runs in the Debian bookworm image and on the host (tests).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import termios
import threading
import time
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2

RECV_CHUNK = 65536
LISTEN_BACKLOG = 128
# Past this much unsent echo data the echo loop stops reading, like a blocking echo loop would,
# so a peer that never reads ends up facing our closed receive window instead of our memory.
ECHO_BACKLOG_LIMIT = 1 << 20
MAX_SEND_SIZE = 16 << 20
MAX_INT32 = 2**31 - 1
# Linux limits (include/net/tcp.h): MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT.
MAX_KEEPIDLE_S = 32767
MAX_KEEPINTVL_S = 32767
MAX_KEEPCNT = 127

SERVER_MODES = ("echo", "hold", "close-first", "sink")
CLIENT_MODES = ("idle", "send", "close")
TOP_KEYS = frozenset(
    {
        "host",
        "role",
        "mode",
        "port",
        "bind",
        "connect",
        "every_ms",
        "size",
        "send_after_s",
        "count",
        "close_after_s",
        "socket",
    }
)
SOCKET_KEYS = frozenset(
    {"keepalive", "keepidle_s", "keepintvl_s", "keepcnt", "user_timeout_ms", "linger_s", "nodelay"}
)
DEFAULT_BIND = "0.0.0.0"
DEFAULT_CLIENT_CLOSE_AFTER_S = 1.0
DEFAULT_SERVER_CLOSE_AFTER_S = 0.5


class ConfigError(ValueError):
    """The JSON config is unusable; the message is shown to the user as one line."""


class Terminated(BaseException):
    """Raised from the SIGTERM/SIGINT handler.

    A BaseException so that the `except OSError` / `except Exception` handlers around socket calls
    cannot swallow it: it has to unwind straight to main().
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass(frozen=True)
class SocketOptions:
    keepalive: bool = False
    keepidle_s: int | None = None
    keepintvl_s: int | None = None
    keepcnt: int | None = None
    user_timeout_ms: int | None = None
    linger_s: int | None = None
    nodelay: bool = False


@dataclass(frozen=True)
class Config:
    host: str
    role: str
    mode: str
    port: int | None
    bind: str
    connect: str | None
    every_ms: float
    size: int
    send_after_s: float
    count: int | None
    close_after_s: float | None
    socket: SocketOptions


@dataclass(frozen=True)
class SendPlan:
    start_delay_s: float
    period_s: float
    size: int
    count: int | None


@dataclass(frozen=True)
class Plan:
    """What one connection does: the mode, turned into mechanics."""

    read: bool
    echo: bool
    send: SendPlan | None
    close_after_s: float | None


# ---------------------------------------------------------------------------------------------
# Config parsing


def read_bool(raw: dict[str, Any], key: str, default: bool, prefix: str = "") -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{prefix}{key} must be true or false, got {value!r}")
    return value


def read_int(
    raw: dict[str, Any], key: str, *, minimum: int, maximum: int, default: int | None, prefix: str = ""
) -> int | None:
    value = raw.get(key)
    if value is None:
        return default
    # bool is an int subclass in Python; `true` is never a sensible port or count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{prefix}{key} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{prefix}{key} must be between {minimum} and {maximum}, got {value}")
    return value


def read_number(
    raw: dict[str, Any], key: str, *, minimum: float, default: float | None, exclusive: bool = False
) -> float | None:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    # json.loads accepts NaN and Infinity, which would break every deadline computation.
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be finite, got {value!r}")
    too_small = value <= minimum if exclusive else value < minimum
    if too_small:
        relation = "greater than" if exclusive else "at least"
        raise ConfigError(f"{key} must be {relation} {minimum}, got {value}")
    return float(value)


def read_str(raw: dict[str, Any], key: str, default: str | None) -> str | None:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string, got {value!r}")
    return value


def require_str(raw: dict[str, Any], key: str, why: str = "") -> str:
    value = read_str(raw, key, None)
    if value is None:
        raise ConfigError(f"missing required key {key!r}{why}")
    return value


def parse_ip(text: str, key: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"{key} must be an IP address, got {text!r}") from None


def parse_endpoint(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """Split "a.b.c.d:port" or "[v6]:port"; names are refused because the scenario pins addresses."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ConfigError(f"connect must look like [v6addr]:port, got {text!r}")
        host, port_text = text[1:close], text[close + 2 :]
        ip = parse_ip(host, "connect")
        if ip.version != 6:
            raise ConfigError(f"connect: brackets are for IPv6 addresses, got {text!r}")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"connect must look like a.b.c.d:port or [v6addr]:port, got {text!r}")
        ip = parse_ip(host, "connect")
        if ip.version != 4:
            raise ConfigError(f"connect: write IPv6 addresses as [v6addr]:port, got {text!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"connect port must be 1..65535, got {port_text!r}")
    return ip, int(port_text)


def parse_socket_options(value: Any) -> SocketOptions:
    if value is None:
        return SocketOptions()
    if not isinstance(value, dict):
        raise ConfigError(f"socket must be an object, got {value!r}")
    unknown = sorted(set(value) - SOCKET_KEYS)
    if unknown:
        raise ConfigError(f"unknown socket key(s): {', '.join(unknown)}")
    p = "socket."
    return SocketOptions(
        keepalive=read_bool(value, "keepalive", False, p),
        keepidle_s=read_int(value, "keepidle_s", minimum=1, maximum=MAX_KEEPIDLE_S, default=None, prefix=p),
        keepintvl_s=read_int(
            value, "keepintvl_s", minimum=1, maximum=MAX_KEEPINTVL_S, default=None, prefix=p
        ),
        keepcnt=read_int(value, "keepcnt", minimum=1, maximum=MAX_KEEPCNT, default=None, prefix=p),
        user_timeout_ms=read_int(
            value, "user_timeout_ms", minimum=0, maximum=MAX_INT32, default=None, prefix=p
        ),
        linger_s=read_int(value, "linger_s", minimum=0, maximum=MAX_INT32, default=None, prefix=p),
        nodelay=read_bool(value, "nodelay", False, p),
    )


def parse_config(argv: list[str]) -> Config:
    if len(argv) != 1:
        raise ConfigError(f"expected exactly one argument holding the JSON config, got {len(argv)}")
    try:
        raw = json.loads(argv[0])
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a JSON object")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s): {', '.join(unknown)}")

    host = require_str(raw, "host")
    role = require_str(raw, "role")
    if role not in ("server", "client"):
        raise ConfigError(f"role must be 'server' or 'client', got {role!r}")
    modes = SERVER_MODES if role == "server" else CLIENT_MODES
    mode = require_str(raw, "mode")
    if mode not in modes:
        raise ConfigError(f"mode {mode!r} is not valid for role {role}; expected one of {', '.join(modes)}")

    # Port 0 lets the kernel pick; the chosen port is reported in `listening` (used by the tests).
    if role == "server" and raw.get("port") is None:
        raise ConfigError("missing required key 'port' (role server)")
    port = read_int(raw, "port", minimum=0, maximum=65535, default=None)
    bind = read_str(raw, "bind", None) or DEFAULT_BIND
    parse_ip(bind, "bind")
    connect = (
        require_str(raw, "connect", " (role client)") if role == "client" else read_str(raw, "connect", None)
    )
    if connect is not None:
        parse_endpoint(connect)

    every_ms = read_number(raw, "every_ms", minimum=0, default=200.0, exclusive=True)
    size = read_int(raw, "size", minimum=1, maximum=MAX_SEND_SIZE, default=64)
    send_after_s = read_number(raw, "send_after_s", minimum=0, default=0.0)
    count = read_int(raw, "count", minimum=1, maximum=MAX_INT32, default=None)
    close_after_s = read_number(raw, "close_after_s", minimum=0, default=None)
    if close_after_s is None and mode == "close":
        close_after_s = DEFAULT_CLIENT_CLOSE_AFTER_S
    elif close_after_s is None and mode == "close-first":
        close_after_s = DEFAULT_SERVER_CLOSE_AFTER_S
    elif close_after_s is not None and role == "server" and mode != "close-first":
        raise ConfigError(f"close_after_s applies to server mode close-first only, not {mode}")

    assert every_ms is not None and size is not None and send_after_s is not None  # defaults given
    return Config(
        host=host,
        role=role,
        mode=mode,
        port=port,
        bind=bind,
        connect=connect,
        every_ms=every_ms,
        size=size,
        send_after_s=send_after_s,
        count=count,
        close_after_s=close_after_s,
        socket=parse_socket_options(raw.get("socket")),
    )


def plan_connection(config: Config) -> Plan:
    if config.role == "server":
        return Plan(
            read=config.mode != "hold",
            echo=config.mode == "echo",
            send=None,
            close_after_s=config.close_after_s if config.mode == "close-first" else None,
        )
    send = None
    if config.mode == "send":
        send = SendPlan(
            start_delay_s=config.send_after_s,
            period_s=config.every_ms / 1000.0,
            size=config.size,
            count=config.count,
        )
    return Plan(read=True, echo=False, send=send, close_after_s=config.close_after_s)


# ---------------------------------------------------------------------------------------------
# Events


class Emitter:
    """Writes events as JSON lines; shared by the server's connection threads, hence the lock."""

    def __init__(self, host: str) -> None:
        self._host = host
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        # Wall clock for comparing with pcap timestamps (same kernel clock); monotonic for intervals.
        record: dict[str, Any] = {"t": time.time(), "mono": time.monotonic(), "host": self._host}
        record["event"] = event
        record.update(fields)
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                # Nobody is listening any more; dying here would change the TCP behaviour under test.
                pass


def describe_error(op: str, exc: OSError) -> dict[str, Any]:
    code = exc.errno if exc.errno is not None else 0
    return {
        "op": op,
        "errno": errno.errorcode.get(code, str(code)),
        "code": code,
        "message": exc.strerror or str(exc),
    }


def format_address(address: Any) -> str:
    """Render a sockaddr as "IP:PORT" ("[v6]:PORT" for IPv6, plain IPv4 for v4-mapped v6)."""
    host, port = str(address[0]), int(address[1])
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}"
    if isinstance(ip, ipaddress.IPv6Address):
        # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; show them as the IPv4 they are.
        if ip.ipv4_mapped is not None:
            return f"{ip.ipv4_mapped}:{port}"
        return f"[{host}]:{port}"
    return f"{host}:{port}"


# ---------------------------------------------------------------------------------------------
# Socket options


def apply_socket_options(sock: socket.socket, options: SocketOptions) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(options.keepalive))
    if options.keepidle_s is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, options.keepidle_s)
    if options.keepintvl_s is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, options.keepintvl_s)
    if options.keepcnt is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, options.keepcnt)
    if options.user_timeout_ms is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, options.user_timeout_ms)
    if options.linger_s is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, options.linger_s))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(options.nodelay))


def read_socket_options(sock: socket.socket) -> dict[str, Any]:
    """Read back what the kernel holds; for keepidle/intvl/cnt that is the sysctl value when unset."""
    onoff, linger = struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
    return {
        "keepalive": bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)),
        "keepidle_s": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        "keepintvl_s": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        "keepcnt": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        "user_timeout_ms": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        "linger_s": linger if onoff else None,
        "nodelay": bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)),
    }


def configure_socket(
    sock: socket.socket, options: SocketOptions, emitter: Emitter, tag: dict[str, str]
) -> bool:
    """Set the options and report the read-back values; False (error reported) if the kernel refused."""
    try:
        apply_socket_options(sock, options)
        values = read_socket_options(sock)
    except OSError as exc:
        emitter.emit("error", **tag, **describe_error("setsockopt", exc))
        return False
    emitter.emit("socket_options", **tag, **values)
    return True


def count_unread_bytes(sock: socket.socket) -> int:
    # FIONREAD is SIOCINQ on Linux: bytes sitting in the receive queue.
    result = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", result)[0])


# ---------------------------------------------------------------------------------------------
# One connection


class Connection:
    """Drives one connected socket with poll() so that errors surface promptly in every mode.

    The socket is non-blocking: a full send buffer (a paused peer's zero window) must never
    stop the loop from watching for EOF and errors.
    """

    def __init__(
        self, sock: socket.socket, plan: Plan, emitter: Emitter, tag: dict[str, str], started_at: float
    ) -> None:
        self._sock = sock
        self._plan = plan
        self._emitter = emitter
        self._tag = tag
        sock.setblocking(False)
        self._pending = bytearray()  # bytes the application wrote that the kernel has not taken yet
        self._blocked = False
        self._message_in_flight = False
        self._messages_done = 0
        self._scheduled_at = 0.0
        self._sent_total = 0
        self._received_total = 0
        self._closing = False
        self._done = False
        self._peer_fin_reported = False
        self._next_send_at = started_at + plan.send.start_delay_s if plan.send else None
        self._close_at = started_at + plan.close_after_s if plan.close_after_s is not None else None

    def report(self, event: str, **fields: Any) -> None:
        self._emitter.emit(event, **self._tag, **fields)

    def run(self) -> None:
        poller = select.poll()
        poller.register(self._sock, 0)
        try:
            while not self._done:
                self.act_on_timers(time.monotonic())
                if self._done:
                    break
                poller.modify(self._sock, self.compute_poll_mask())
                for _fd, revents in poller.poll(self.compute_poll_timeout_ms(time.monotonic())):
                    self.handle_readiness(revents)
        finally:
            # Only reached without `closed` on Terminated or a bug; the fd must not leak in a server.
            if not self._done:
                self._sock.close()

    def send_is_due_later(self) -> bool:
        send = self._plan.send
        if send is None or self._closing or self._message_in_flight or self._next_send_at is None:
            return False
        return send.count is None or self._messages_done < send.count

    def act_on_timers(self, now: float) -> None:
        if self._close_at is not None and not self._closing and now >= self._close_at:
            self.begin_close()
            return
        if self.send_is_due_later() and self._next_send_at is not None and now >= self._next_send_at:
            assert self._plan.send is not None  # send_is_due_later checked it
            self._scheduled_at = self._next_send_at
            self._message_in_flight = True
            self._pending += b"x" * self._plan.send.size
            self.flush_pending()

    def compute_poll_mask(self) -> int:
        mask = 0
        if self._plan.read:
            if len(self._pending) <= ECHO_BACKLOG_LIMIT:
                mask |= select.POLLIN
        elif not self._peer_fin_reported:
            # hold never reads, so a FIN would stay invisible; RDHUP reveals it without reading.
            mask |= select.POLLRDHUP
        if self._pending:
            mask |= select.POLLOUT
        # POLLERR and POLLHUP are always reported, so even a non-reading socket learns of errors.
        return mask

    def compute_poll_timeout_ms(self, now: float) -> int | None:
        deadlines = []
        if self._close_at is not None and not self._closing:
            deadlines.append(self._close_at)
        if self.send_is_due_later() and self._next_send_at is not None:
            deadlines.append(self._next_send_at)
        if not deadlines:
            return None
        return max(0, math.ceil((min(deadlines) - now) * 1000))

    def handle_readiness(self, revents: int) -> None:
        if revents & select.POLLNVAL:
            raise RuntimeError("poll reported POLLNVAL: the socket was closed under the loop")
        # Read before writing: after an RST the error is then reported by recv, as an app would see it.
        if self._plan.read:
            if revents & (select.POLLIN | select.POLLERR | select.POLLHUP):
                self.receive()
        elif revents & (select.POLLERR | select.POLLHUP):
            self.collect_socket_error()
        elif revents & select.POLLRDHUP and not self._peer_fin_reported:
            self._peer_fin_reported = True
            self.report("peer_fin", unread=count_unread_bytes(self._sock))
        if not self._done and revents & select.POLLOUT and self._pending:
            self.flush_pending()

    def receive(self) -> None:
        try:
            data = self._sock.recv(RECV_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail("recv", exc)
            return
        if not data:
            # Initiator or passive side alike: close right away, so a passive close lets the
            # kernel merge its FIN with the ACK of the peer's FIN.
            self.report("eof")
            self.finish()
            return
        self._received_total += len(data)
        self.report("received", bytes=len(data), total=self._received_total)
        if self._plan.echo and not self._closing:
            self._pending += data
            self.flush_pending()

    def collect_socket_error(self) -> None:
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.fail("poll", OSError(code, os.strerror(code)))
        else:
            # Hung up with no pending error (both directions shut): nothing more can happen.
            self.finish()

    def flush_pending(self) -> None:
        try:
            sent = self._sock.send(self._pending, socket.MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.fail("send", exc)
            return
        if sent:
            del self._pending[:sent]
            self._sent_total += sent
            self.report("sent", bytes=sent, total=self._sent_total)
        if self._pending:
            # Like a blocking write(): blocked from the first stall until all of it is taken.
            if not self._blocked:
                self._blocked = True
                self.report("blocked", unsent=len(self._pending))
            return
        if self._blocked:
            self._blocked = False
            self.report("unblocked")
        if self._message_in_flight and self._plan.send is not None:
            self._message_in_flight = False
            self._messages_done += 1
            # A blocked write delays the next tick rather than queueing a burst behind it.
            self._next_send_at = max(self._scheduled_at + self._plan.send.period_s, time.monotonic())

    def begin_close(self) -> None:
        # Bytes the app still held are abandoned, as when a blocked writer gives up to close.
        unsent = len(self._pending)
        self._pending.clear()
        self._blocked = False
        self._message_in_flight = False
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.fail("shutdown", exc)
            return
        self._closing = True
        self.report("closing", how="shutdown", **({"unsent": unsent} if unsent else {}))

    def fail(self, op: str, exc: OSError) -> None:
        self.report("error", **describe_error(op, exc))
        self.finish()

    def finish(self) -> None:
        # Whatever the app still held (echo backlog, a blocked message) dies with the socket.
        unsent = len(self._pending)
        self._sock.close()
        self._done = True
        self.report("closed", **({"unsent": unsent} if unsent else {}))


# ---------------------------------------------------------------------------------------------
# Roles


def family_of(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> socket.AddressFamily:
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def serve_connection(sock: socket.socket, address: Any, config: Config, emitter: Emitter) -> None:
    started_at = time.monotonic()
    # The accept() address, not getpeername(): that fails with ENOTCONN once the peer has reset.
    peer = format_address(address)
    try:
        local = format_address(sock.getsockname())
    except OSError:
        local = "?"
    emitter.emit("accepted", local=local, peer=peer)
    tag = {"peer": peer}
    if not configure_socket(sock, config.socket, emitter, {"socket": "connection", **tag}):
        sock.close()
        emitter.emit("closed", **tag)
        return
    Connection(sock, plan_connection(config), emitter, tag, started_at).run()


def run_server(config: Config, emitter: Emitter) -> int:
    assert config.port is not None  # parse_config requires it for servers
    ip = ipaddress.ip_address(config.bind)
    listener = socket.socket(family_of(ip), socket.SOCK_STREAM)
    # A restarted server (a "reboot") must be able to rebind while old connections sit in TIME_WAIT.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if not configure_socket(listener, config.socket, emitter, {"socket": "listener"}):
        return EXIT_FAILED
    try:
        listener.bind((config.bind, config.port))
    except OSError as exc:
        emitter.emit("error", **describe_error("bind", exc))
        return EXIT_FAILED
    listener.listen(LISTEN_BACKLOG)
    emitter.emit("listening", port=listener.getsockname()[1], bind=config.bind)
    while True:
        try:
            sock, address = listener.accept()
        except OSError as exc:
            emitter.emit("error", **describe_error("accept", exc))
            # Out of descriptors or memory: back off instead of spinning on the same failure.
            time.sleep(0.1)
            continue
        worker = threading.Thread(
            target=serve_connection, args=(sock, address, config, emitter), name="conn", daemon=True
        )
        worker.start()


def run_client(config: Config, emitter: Emitter) -> int:
    assert config.connect is not None  # parse_config requires it for clients
    ip, port = parse_endpoint(config.connect)
    peer = format_address((str(ip), port))
    sock = socket.socket(family_of(ip), socket.SOCK_STREAM)
    # Set before connect, so the SYN already carries e.g. the user timeout's effect on retries.
    if not configure_socket(sock, config.socket, emitter, {"socket": "connection"}):
        sock.close()
        return EXIT_FAILED
    emitter.emit("connecting", peer=peer)
    try:
        sock.connect((str(ip), port))
    except OSError as exc:
        emitter.emit("error", **describe_error("connect", exc))
        sock.close()
        return EXIT_OK
    started_at = time.monotonic()
    emitter.emit("connected", local=format_address(sock.getsockname()), peer=peer)
    Connection(sock, plan_connection(config), emitter, {}, started_at).run()
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Entry point


def raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def main(argv: list[str]) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the JSON error text contained
        print(f"tcpscen agent: bad config: {message}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    signal.signal(signal.SIGTERM, raise_terminated)
    signal.signal(signal.SIGINT, raise_terminated)
    emitter = Emitter(config.host)
    try:
        emitter.emit("start", pid=os.getpid(), config=asdict(config))
        run = run_server if config.role == "server" else run_client
        code = run(config, emitter)
    except Terminated as stop:
        emitter.emit("exit", code=EXIT_OK, signal=signal.Signals(stop.signum).name)
        return EXIT_OK
    emitter.emit("exit", code=code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
