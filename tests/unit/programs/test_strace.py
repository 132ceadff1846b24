"""The syscall trace read into events: real strace lines (recorded on the engine) in, the
agent's events out; the errnos of non-blocking I/O are no errors, a resumed call keeps its
entry time and adds its duration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.programs.strace import TraceReader
from orchestrator.run.records import parse_event
from orchestrator.verdict.outcome import app_outcome

CONNECT = [
    "11    1796121392.415157 socket(AF_INET, SOCK_STREAM|SOCK_NONBLOCK, IPPROTO_TCP) = 3<TCP:[245417]> <0.000020>",  # noqa: E501
    '11    1796121392.418478 connect(3<TCP:[245417]>, {sa_family=AF_INET, sin_port=htons(8000), sin_addr=inet_addr("10.99.77.10")}, 16) = -1 EINPROGRESS (Operation now in progress) <0.000100>',  # noqa: E501
    "11    1796121392.421583 getsockopt(3<TCP:[10.99.77.20:35276->10.99.77.10:8000]>, SOL_SOCKET, SO_ERROR, [0], [4]) = 0 <0.000010>",  # noqa: E501
]
TUPLE = "3<TCP:[10.99.77.20:35276->10.99.77.10:8000]>"


def events(lines: list[str]) -> list[dict[str, Any]]:
    reader = TraceReader("client", "client.syscalls.txt")
    return [e for line in lines for e in reader.feed(line)]


def test_a_non_blocking_connect_is_connected_when_so_error_says_0() -> None:
    (connected,) = events(CONNECT)
    assert connected["event"] == "connected"
    assert (connected["local"], connected["peer"]) == ("10.99.77.20:35276", "10.99.77.10:8000")
    assert connected["trace"] == "client.syscalls.txt:3"
    assert connected["t"] == pytest.approx(1796121392.421593)


def test_a_blocking_connect_is_connected_at_once_with_its_peer() -> None:
    line = '7 100.0 connect(3<TCP:[99]>, {sa_family=AF_INET, sin_port=htons(6379), sin_addr=inet_addr("10.77.0.10")}, 16) = 0 <0.5>'  # noqa: E501
    (connected,) = events([line])
    assert (connected["event"], connected["peer"], connected["t"]) == ("connected", "10.77.0.10:6379", 100.5)


def test_a_refused_connect_is_an_error_and_so_is_a_so_error_after_einprogress() -> None:
    line = '7 1.0 connect(3<TCP:[9]>, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("10.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused) <0.001>'  # noqa: E501
    (error,) = events([line])
    assert (error["event"], error["op"], error["errno"], error["peer"]) == (
        "error",
        "connect",
        "ECONNREFUSED",
        "10.0.0.1:80",
    )
    so = CONNECT[2].replace("[0]", "[ETIMEDOUT]")
    (error,) = events([*CONNECT[:2], so])
    assert (error["event"], error["errno"], error["code"]) == ("error", "ETIMEDOUT", 110)


def test_a_blocked_read_that_times_out_is_seen_when_it_returns() -> None:
    lines = [
        *CONNECT,
        f"11    1796121392.432549 read({TUPLE},  <unfinished ...>",
        '12    1796121392.432600 write(1</dev/null<char 1:3>>, "x", 1) = 1 <0.000005>',
        '11    1796121405.832549 <... read resumed>"", 16384) = -1 ETIMEDOUT (Connection timed out) <13.400000>',  # noqa: E501
    ]
    *_, error = events(lines)
    assert (error["event"], error["op"], error["errno"]) == ("error", "read", "ETIMEDOUT")
    assert error["t"] == pytest.approx(1796121392.432549 + 13.4)
    assert error["peer"] == "10.99.77.10:8000"


def test_the_mechanics_of_non_blocking_io_are_not_errors() -> None:
    lines = [
        *CONNECT,
        f"11 2.0 read({TUPLE}, 0xc000, 4096) = -1 EAGAIN (Resource temporarily unavailable) <0.00001>",
        f"11 2.1 shutdown({TUPLE}, SHUT_RD) = -1 ENOTCONN (Transport endpoint is not connected) <0.00001>",
        f"11 2.2 setsockopt({TUPLE}, SOL_IPV6, IPV6_V6ONLY, [0], 4) = -1 ENOPROTOOPT (Protocol not available) <0.00001>",  # noqa: E501
    ]
    kinds = [e["event"] for e in events(lines)]
    assert kinds == ["connected", "option_refused"]


def test_eof_sent_received_epipe_and_close() -> None:
    lines = [
        *CONNECT,
        f'11 2.0 write({TUPLE}, "GET /", 5) = 5 <0.00001>',
        f'11 2.1 recvfrom({TUPLE}, "HTTP", 8192, 0, NULL, NULL) = 4 <0.00001>',
        f'11 2.2 sendto({TUPLE}, "x", 1, MSG_NOSIGNAL, NULL, 0) = -1 EPIPE (Broken pipe) <0.00001>',
        "11 2.25 --- SIGPIPE {si_signo=SIGPIPE, si_code=SI_USER, si_pid=11, si_uid=65534} ---",
        f'11 2.3 read({TUPLE}, "", 16384) = 0 <0.00001>',
        f"11 2.4 close({TUPLE}) = 0 <0.00001>",
    ]
    got = [(e["event"], e.get("bytes"), e.get("errno"), e.get("op")) for e in events(lines)[1:]]
    assert got == [
        ("sent", 5, None, None),
        ("received", 4, None, None),
        ("error", None, "EPIPE", "send"),
        ("signal", None, None, None),
        ("eof", None, None, None),
        ("closed", None, None, None),
    ]


def test_files_and_pipes_are_not_sockets() -> None:
    lines = [
        '11 1.0 read(3</etc/hosts>, "", 4096) = 0 <0.00001>',
        '11 1.1 write(2<pipe:[244361]>, "log", 3) = 3 <0.00001>',
        '11 1.2 connect(3<UNIX-STREAM:[245409]>, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory) <0.0001>',  # noqa: E501
    ]
    assert events(lines) == []


def test_a_listener_and_an_accepted_connection() -> None:
    lines = [
        "9 1.0 listen(3<TCP:[0.0.0.0:8000]>, 5) = 0 <0.00001>",
        '9 2.0 accept4(3<TCP:[0.0.0.0:8000]>, {sa_family=AF_INET, sin_port=htons(35276), sin_addr=inet_addr("10.99.77.20")}, [16], SOCK_CLOEXEC) = 4<TCP:[10.99.77.10:8000->10.99.77.20:35276]> <1.5>',  # noqa: E501
        '10 4.0 recvfrom(4<TCP:[10.99.77.10:8000->10.99.77.20:35276]>, "", 8192, 0, NULL, NULL) = 0 <0.1>',
    ]
    listening, accepted, eof = events(lines)
    assert (listening["event"], listening["port"]) == ("listening", 8000)
    assert (accepted["event"], accepted["local"], accepted["peer"]) == (
        "accepted",
        "10.99.77.10:8000",
        "10.99.77.20:35276",
    )
    assert accepted["t"] == pytest.approx(3.5)
    assert (eof["event"], eof["peer"]) == ("eof", "10.99.77.20:35276")


def test_a_line_that_is_no_syscall_is_ignored() -> None:
    assert events(["# no strace in this image: the program runs untraced", "garbage", ""]) == []


# Recorded 2026-12-03 in two network namespaces (Python 3.11, strace with STRACE_ARGS, the
# TCP lines): ssl's wrap_socket of an unconnected socket (getpeername, then recv(1): ENOTCONN
# both), repr() of an unconnected socket, a connect, the peer's RST (SO_LINGER 0) seen by recv
# as ECONNRESET, then getpeername on the gone connection, and the interpreter's repr of the
# sockets left open at exit (getpeername again: ENOTCONN on both).
RECORDED = Path(__file__).parent / "recorded" / "python_ssl_repr_reset.syscalls.txt"


def test_enotconn_of_sockets_without_a_connection_is_no_error() -> None:
    got = events(RECORDED.read_text().splitlines())
    errors = [(e["syscall"], e["errno"]) for e in got if e["event"] == "error"]
    assert errors == [("recvfrom", "ECONNRESET")]
    assert [e["event"] for e in got if e["event"] in ("connected", "error")] == ["connected", "error"]
    # What the verdict says the program saw: the reset, not a probe's ENOTCONN before connect().
    parsed = [parse_event(json.dumps(e), "client") for e in got]
    seen = app_outcome("client", [e for e in parsed if e is not None])
    assert (seen.sees, seen.endpoint) == ("ECONNRESET", "10.231.0.2:7001")


def test_enotconn_that_first_tells_of_a_connections_end_is_kept() -> None:
    """A connection whose end only getpeername shows (no read or write failed first)."""
    lines = [
        *CONNECT,
        f"11 5.0 getpeername({TUPLE}, 0x7ffd, [16]) = -1 ENOTCONN (Transport endpoint is not connected) <0.00001>",  # noqa: E501
    ]
    *_, error = events(lines)
    assert (error["event"], error["syscall"], error["errno"], error["peer"]) == (
        "error",
        "getpeername",
        "ENOTCONN",
        "10.99.77.10:8000",
    )


def test_enotconn_from_a_listener_or_a_connect_under_way_is_no_error() -> None:
    listener = "3<TCP:[10.99.77.10:8000]>"
    lines = [
        f"11 1.0 getpeername({listener}, 0x7ffd, [16]) = -1 ENOTCONN (Transport endpoint is not connected) <0.00001>",  # noqa: E501
        *CONNECT[:2],
        "11 1.1 getpeername(3<TCP:[10.99.77.20:35276->10.99.77.10:8000]>, 0x7ffd, [16]) = -1 ENOTCONN (Transport endpoint is not connected) <0.00001>",  # noqa: E501
        CONNECT[2],
    ]
    assert [e["event"] for e in events(lines)] == ["connected"]
    # A read on a connected socket that fails with ENOTCONN is the connection's news.
    late = f"11 6.0 read({TUPLE}, 0xc000, 4096) = -1 ENOTCONN (Transport endpoint is not connected) <0.00001>"
    assert events([*CONNECT, late])[-1]["errno"] == "ENOTCONN"
