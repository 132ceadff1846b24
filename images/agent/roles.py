"""The two roles: a server that accepts connections for ever, a client that makes one; and the
socket options both set and read back."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from typing import Any

import wire
from connection import Connection, plan_connection
from emitter import Emitter, describe_error

LISTEN_BACKLOG = 128
TCP_RTO_MAX_MS = 44  # linux/tcp.h, kernels from 6.15 (Python's socket module does not name it)


def apply_socket_options(sock: socket.socket, options: wire.SocketOptions) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(options.keepalive))
    if options.keepidle_s is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, options.keepidle_s)
    if options.keepintvl_s is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, options.keepintvl_s)
    if options.keepcnt is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, options.keepcnt)
    if options.user_timeout_ms is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, options.user_timeout_ms)
    if options.rto_max_ms is not None:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_RTO_MAX_MS, options.rto_max_ms)
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
        "rto_max_ms": _rto_max_ms(sock),
        "linger_s": linger if onoff else None,
        "nodelay": bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)),
    }


def _rto_max_ms(sock: socket.socket) -> int | None:
    """The socket's RTO ceiling; None on kernels before 6.15, which have none to read."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, TCP_RTO_MAX_MS)
    except OSError:
        return None


def configure_socket(
    sock: socket.socket, options: wire.SocketOptions, emitter: Emitter, tag: dict[str, Any]
) -> bool:
    """Set the options and report the read-back values; False (error reported) if the kernel refused."""
    try:
        apply_socket_options(sock, options)
        values = read_socket_options(sock)
    except OSError as exc:
        emitter.emit(wire.Event.ERROR, **tag, **describe_error("setsockopt", exc))
        return False
    emitter.emit(wire.Event.SOCKET_OPTIONS, **tag, **values)
    return True


def family_of(ip: wire.IPAddress) -> socket.AddressFamily:
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def serve_connection(sock: socket.socket, address: Any, config: wire.Config, emitter: Emitter) -> None:
    started_at = time.monotonic()
    # The accept() address, not getpeername(): that fails with ENOTCONN once the peer has reset.
    peer = wire.format_address(address)
    try:
        local = wire.format_address(sock.getsockname())
    except OSError:
        local = "?"
    emitter.emit(wire.Event.ACCEPTED, local=local, peer=peer)
    tag = {"peer": peer}
    if not configure_socket(sock, config.socket, emitter, {"socket": "connection", **tag}):
        sock.close()
        emitter.emit(wire.Event.CLOSED, **tag)
        return
    Connection(sock, plan_connection(config), emitter, tag, started_at).run()


def run_server(config: wire.Config, emitter: Emitter) -> int:
    assert config.port is not None  # wire requires it for servers
    ip = ipaddress.ip_address(config.bind)
    listener = socket.socket(family_of(ip), socket.SOCK_STREAM)
    # A restarted server (a "reboot") must be able to rebind while old connections sit in TIME_WAIT.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if not configure_socket(listener, config.socket, emitter, {"socket": "listener"}):
        return wire.EXIT_FAILED
    try:
        listener.bind((config.bind, config.port))
    except OSError as exc:
        emitter.emit(wire.Event.ERROR, **describe_error("bind", exc))
        return wire.EXIT_FAILED
    listener.listen(LISTEN_BACKLOG)
    emitter.emit(wire.READY_EVENT, port=listener.getsockname()[1], bind=config.bind)
    while True:
        try:
            sock, address = listener.accept()
        except OSError as exc:
            emitter.emit(wire.Event.ERROR, **describe_error("accept", exc))
            # Out of descriptors or memory: back off instead of spinning on the same failure.
            time.sleep(0.1)
            continue
        worker = threading.Thread(
            target=serve_connection, args=(sock, address, config, emitter), name="conn", daemon=True
        )
        worker.start()


def run_client(config: wire.Config, emitter: Emitter) -> int:
    """One connection, or a pool of `connections`: each connected in turn, then all run at once
    (one thread each), every event tagged with its connection's number."""
    if config.connections == 1:
        return connect_and_run(config, emitter, {})
    threads = [
        threading.Thread(
            target=connect_and_run, args=(config, emitter, {"conn": n}), name=f"conn{n}", daemon=True
        )
        for n in range(1, config.connections + 1)
    ]
    for thread in threads:
        thread.start()
        thread.join(0.02)  # connects in order, without waiting for a slow one
    for thread in threads:
        thread.join()
    return wire.EXIT_OK


def connect_and_run(config: wire.Config, emitter: Emitter, tag: dict[str, Any]) -> int:
    assert config.connect is not None  # wire requires it for clients
    ip, port = wire.parse_endpoint(config.connect)
    peer = wire.format_address((str(ip), port))
    sock = socket.socket(family_of(ip), socket.SOCK_STREAM)
    # Set before connect, so the SYN already carries e.g. the user timeout's effect on retries.
    if not configure_socket(sock, config.socket, emitter, {"socket": "connection", **tag}):
        sock.close()
        return wire.EXIT_FAILED
    emitter.emit(wire.Event.CONNECTING, peer=peer, **tag)
    try:
        sock.connect((str(ip), port))
    except OSError as exc:
        emitter.emit(wire.Event.ERROR, **tag, **describe_error("connect", exc))
        sock.close()
        return wire.EXIT_OK
    started_at = time.monotonic()
    emitter.emit(wire.Event.CONNECTED, local=wire.format_address(sock.getsockname()), peer=peer, **tag)
    Connection(sock, plan_connection(config), emitter, tag, started_at).run()
    return wire.EXIT_OK
