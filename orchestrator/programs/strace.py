"""A program's syscall trace (`strace -f -ttt -T -yy`), read line by line into the events the
built-in agent prints (connected, accepted, sent, received, eof, error, closed), so the verdict
judges any program as it judges the agent: "the client's read got ETIMEDOUT at +13.4 s".

Only syscalls on TCP sockets count (strace's -yy names each fd: `3<TCP:[a:p->b:q]>`); errnos
that are part of normal non-blocking I/O (EAGAIN, EINPROGRESS, ...) are not errors the app saw.
Times are the syscall's return (entry + its duration), on the wall clock of the pcaps.
"""

from __future__ import annotations

import errno as errnos
import os
import re
from dataclasses import dataclass, field
from typing import Any

# What strace traces: the network calls, plus read/write/close, which many programs use on sockets.
TRACED = "%network,read,write,readv,writev,close,sendfile"
STRACE_ARGS = ["-f", "-q", "-ttt", "-T", "-yy", "-s", "64", "-e", f"trace={TRACED}", "-e", "signal=all"]
# Not what an app "sees": the mechanics of non-blocking sockets and interrupted calls.
BENIGN = frozenset({"EAGAIN", "EWOULDBLOCK", "EINPROGRESS", "EALREADY", "EINTR", "ERESTARTSYS"})
READS = frozenset({"read", "readv", "recvfrom", "recvmsg", "recv"})
WRITES = frozenset({"write", "writev", "sendto", "sendmsg", "send", "sendfile", "sendmmsg"})

_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<t>\d+\.\d+) (?P<body>.*)$")
_CALL = re.compile(r"^(?P<name>\w+)\((?P<args>.*)$")
_RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<args>.*)$")
_RESULT = re.compile(
    r"\) += (?P<ret>-?\d+|\?|0x[0-9a-f]+)(?P<fdinfo><(?:[^<>]|->)*(?:<[^<>]*>)?>)?"
    r"(?: (?P<errno>E[A-Z0-9]+) \((?:[^()]|\([^()]*\))*\))?(?: <(?P<dur>\d+\.\d+)>)?$"
)
_FD = re.compile(r"^(?P<fd>\d+)<(?P<kind>TCP|TCPv6):\[(?P<addr>[^\]]*)\]>")
_SIGNAL = re.compile(r"^--- (?P<sig>SIG[A-Z0-9]+) ")
_EXIT = re.compile(r"^\+\+\+ (?:exited with (?P<code>\d+)|killed by (?P<sig>SIG[A-Z0-9]+))")
_SOCKADDR = re.compile(
    r"sin6?_port=htons\((?P<port>\d+)\), "
    r'(?:sin_addr=inet_addr\("(?P<v4>[^"]+)"\)|.*?inet_pton\(AF_INET6, "(?P<v6>[^"]+)")'
)
_SO_ERROR = re.compile(r"SO_ERROR, \[(?P<err>\w+)\]")


@dataclass(frozen=True)
class Syscall:
    pid: int
    t: float  # when it returned
    name: str
    args: str
    ret: str
    errno: str | None
    fd: int | None
    tcp: str | None  # the socket as -yy names it: "a:p->b:q", "a:p" (a listener), or an inode
    line: int
    ret_fd: str = ""  # a returned fd's name (accept): "<TCP:[a:p->b:q]>"


@dataclass
class TraceReader:
    """Feed it the trace's lines in order (as they are written); each gives the events it means."""

    host: str
    file: str
    _pending: dict[int, tuple[float, str, int]] = field(default_factory=dict)  # pid -> unfinished call
    _connecting: set[int] = field(default_factory=set)
    _sockets: dict[int, str] = field(default_factory=dict)  # fd -> its last known "a:p->b:q"
    _failed: set[int] = field(default_factory=set)  # fds whose connection an error already ended
    _totals: dict[str, int] = field(default_factory=dict)
    line_no: int = 0

    def feed(self, text: str) -> list[dict[str, Any]]:
        self.line_no += 1
        match = _LINE.match(text.rstrip("\n"))
        if match is None:
            return []
        pid, t, body = int(match["pid"]), float(match["t"]), match["body"]
        if (sig := _SIGNAL.match(body)) is not None:
            return [self._event("signal", t, signal=sig["sig"])]
        if _EXIT.match(body):
            return []  # the container's own exit status is what counts (`exit`)
        if body.endswith("<unfinished ...>"):
            self._pending[pid] = (t, body.removesuffix("<unfinished ...>"), self.line_no)
            return []
        if (resumed := _RESUMED.match(body)) is not None:
            start = self._pending.pop(pid, None)
            if start is None:
                return []
            t, head, _ = start
            body = head + resumed["args"]
        call = parse_call(pid, t, body, self.line_no)
        return [] if call is None else self._events(call)

    def _event(self, event: str, t: float, **fields: Any) -> dict[str, Any]:
        return {"t": t, "host": self.host, "event": event, "source": "strace", **fields}

    def _traced(self, event: str, call: Syscall, **fields: Any) -> dict[str, Any]:
        return self._event(event, call.t, syscall=call.name, trace=f"{self.file}:{call.line}", **fields)

    def _events(self, call: Syscall) -> list[dict[str, Any]]:
        if call.fd is None:
            return []
        if call.tcp and "->" in call.tcp:
            self._sockets[call.fd] = call.tcp
        ends = self._sockets.get(call.fd, "")
        local, _, peer = ends.partition("->")
        tag = {"peer": peer} if peer else {}
        failed = call.ret == "-1" and call.errno is not None
        if call.name == "connect":
            if not failed:
                return [self._connected(call, local, _sockaddr(call.args))]
            if call.errno in ("EINPROGRESS", "EALREADY"):
                self._connecting.add(call.fd)
                return []
            return [self._error(call, call.errno or "?", tag | {"peer": _sockaddr(call.args) or peer})]
        if call.name == "getsockopt" and call.fd in self._connecting and (so := _SO_ERROR.search(call.args)):
            self._connecting.discard(call.fd)
            if so["err"] == "0":
                return [self._connected(call, local, peer)]
            return [self._error(call, so["err"], tag)]
        if call.name in ("accept", "accept4") and not failed and call.ret.isdigit():
            return [self._accepted(call)]
        if call.name == "listen" and not failed:
            return [self._traced("listening", call, port=_port(call.tcp))]
        if failed:
            assert call.errno is not None
            if call.errno in BENIGN or self._not_connected_yet(call, ends):
                return []
            if call.name in ("setsockopt", "getsockopt"):
                # An option the kernel refuses (python's IPV6_V6ONLY probe): not the connection's fate.
                return [self._traced("option_refused", call, errno=call.errno)]
            return [self._error(call, call.errno, tag)]
        if call.name in READS or call.name in WRITES:
            return self._io(call, ends, tag)
        if call.name == "close":
            self._sockets.pop(call.fd, None)
            self._connecting.discard(call.fd)
            self._failed.discard(call.fd)
            return [self._traced("closed", call, **tag)]
        if call.name == "shutdown":
            how = (
                "SHUT_RD"
                if "SHUT_RD" in call.args
                else "SHUT_RDWR"
                if "SHUT_RDWR" in call.args
                else "SHUT_WR"
            )
            return [self._traced("closing", call, how=how.lower(), **tag)]
        return []

    def _not_connected_yet(self, call: Syscall, ends: str) -> bool:
        """ENOTCONN that is no news of a connection: from shutdown() (no connection left to
        shut); from getpeername() or a read on a socket that never had one in the trace (named
        by its inode, or a listener: Python's socket repr, and ssl's wrap_socket probe of an
        unconnected socket, getpeername then recv(1), measured on Python 3.11); from
        getpeername() while a non-blocking connect is under way (its outcome comes by SO_ERROR
        or the next read or write), or after an error on the socket already ended its
        connection (Linux says ENOTCONN once it is gone: it repeats that error). Kept where it
        is the first the trace says of a connection's end."""
        if call.errno != "ENOTCONN":
            return False
        if call.name == "shutdown":
            return True
        never = "->" not in ends and "->" not in (call.tcp or "")
        if call.name == "getpeername":
            return never or call.fd in self._connecting or call.fd in self._failed
        return never and call.name in READS

    def _io(self, call: Syscall, ends: str, tag: dict[str, str]) -> list[dict[str, Any]]:
        if not call.ret.isdigit():
            return []
        n = int(call.ret)
        if n == 0 and call.name in READS:
            return [self._traced("eof", call, **tag)]
        if n == 0:
            return []
        kind = "received" if call.name in READS else "sent"
        key = f"{kind} {ends}"
        self._totals[key] = self._totals.get(key, 0) + n
        return [self._traced(kind, call, bytes=n, total=self._totals[key], **tag)]

    def _connected(self, call: Syscall, local: str, peer: str | None) -> dict[str, Any]:
        self._connecting.discard(call.fd or -1)
        fields = {"local": local} if local else {}
        return self._traced("connected", call, peer=peer or "?", **fields)

    def _accepted(self, call: Syscall) -> dict[str, Any]:
        fd, ends = int(call.ret), ""
        found = _FD.match(f"{call.ret}{call.ret_fd}")  # the new socket is named in the result
        if found is not None:
            ends = found["addr"]
        if "->" in ends:
            self._sockets[fd] = ends
        local, _, peer = ends.partition("->")
        return self._traced("accepted", call, local=local or "?", peer=peer or _sockaddr(call.args) or "?")

    def _error(self, call: Syscall, name: str, tag: dict[str, str]) -> dict[str, Any]:
        if call.fd is not None:
            self._failed.add(call.fd)
        code = getattr(errnos, name, 0)
        op = {"recvfrom": "recv", "recvmsg": "recv", "sendto": "send", "sendmsg": "send"}.get(
            call.name, call.name
        )
        return self._traced("error", call, op=op, errno=name, code=code, message=_strerror(code), **tag)


def parse_call(pid: int, t: float, body: str, line: int) -> Syscall | None:
    """One completed syscall, or None for what is not one (or not on a TCP socket)."""
    call = _CALL.match(body)
    if call is None:
        return None
    rest = call["args"]
    result = _RESULT.search(rest)
    if result is None:
        return None
    duration = float(result["dur"]) if result["dur"] else 0.0
    fd_match = _FD.match(rest)
    name = call["name"]
    if fd_match is None:
        return None
    return Syscall(
        pid=pid,
        t=t + duration,
        name=name,
        args=rest[: result.start()],
        ret=result["ret"],
        errno=result["errno"],
        fd=int(fd_match["fd"]),
        tcp=fd_match["addr"],
        line=line,
        ret_fd=result["fdinfo"] or "",
    )


def _sockaddr(args: str) -> str | None:
    found = _SOCKADDR.search(args)
    if found is None:
        return None
    if found["v6"]:
        return f"[{found['v6']}]:{found['port']}"
    return f"{found['v4']}:{found['port']}"


def _port(tcp: str | None) -> int | None:
    if not tcp or ":" not in tcp:
        return None
    tail = tcp.rsplit(":", 1)[1]
    return int(tail) if tail.isdigit() else None


def _strerror(code: int) -> str:
    return os.strerror(code) if code else ""
