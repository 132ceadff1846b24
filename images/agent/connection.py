"""One connected socket, driven by poll(): what the mode says to do, and every event on the way."""

from __future__ import annotations

import fcntl
import math
import os
import select
import socket
import struct
import termios
import time
from dataclasses import dataclass
from typing import Any

import wire
from emitter import Emitter, describe_error

RECV_CHUNK = 65536
# Past this much unsent echo data the echo loop stops reading, like a blocking echo loop would,
# so a peer that never reads ends up facing our closed receive window instead of our memory.
ECHO_BACKLOG_LIMIT = 1 << 20


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
    # pool: after the first message's reply, stop reading and watching, then send on this plan.
    reuse: SendPlan | None = None


def plan_connection(config: wire.Config) -> Plan:
    if config.role == "server":
        return Plan(
            read=config.mode != "hold",
            echo=config.mode == "echo",
            send=None,
            close_after_s=config.close_after_s if config.mode == wire.CLOSE_FIRST else None,
        )
    send = None
    if config.mode == wire.POOL:
        period = config.every_ms / 1000.0
        first = SendPlan(start_delay_s=0.0, period_s=period, size=config.size, count=1)
        reuse = SendPlan(
            start_delay_s=config.send_after_s, period_s=period, size=config.size, count=config.count
        )
        return Plan(read=True, echo=False, send=first, close_after_s=None, reuse=reuse)
    if config.mode == "send":
        send = SendPlan(
            start_delay_s=config.send_after_s,
            period_s=config.every_ms / 1000.0,
            size=config.size,
            count=config.count,
        )
    return Plan(read=True, echo=False, send=send, close_after_s=config.close_after_s)


def count_unread_bytes(sock: socket.socket) -> int:
    # FIONREAD is SIOCINQ on Linux: bytes sitting in the receive queue.
    result = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", result)[0])


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
        self._started_at = started_at
        self._pooled = False  # pool mode, once the first reply came: the socket is not watched

    def report(self, event: wire.Event, **fields: Any) -> None:
        self._emitter.emit(event, **self._tag, **fields)

    def run(self) -> None:
        poller = select.poll()
        poller.register(self._sock, 0)
        try:
            while not self._done:
                self.act_on_timers(time.monotonic())
                if self._done:
                    break
                if self._pooled:
                    # Idle in the pool: nobody watches the socket; only the writes will tell.
                    time.sleep((self.compute_poll_timeout_ms(time.monotonic()) or 1000) / 1000)
                    continue
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
            self.report(wire.Event.PEER_FIN, unread=count_unread_bytes(self._sock))
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
            self.report(wire.Event.EOF)
            self.finish()
            return
        self._received_total += len(data)
        self.report(wire.Event.RECEIVED, bytes=len(data), total=self._received_total)
        reuse = self._plan.reuse
        if reuse is not None and not self._pooled and self._received_total >= reuse.size:
            self.enter_pool(reuse)
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
            self.report(wire.Event.SENT, bytes=sent, total=self._sent_total)
        if self._pending:
            # Like a blocking write(): blocked from the first stall until all of it is taken.
            if not self._blocked:
                self._blocked = True
                self.report(wire.Event.BLOCKED, unsent=len(self._pending))
            return
        if self._blocked:
            self._blocked = False
            self.report(wire.Event.UNBLOCKED)
        if self._message_in_flight and self._plan.send is not None:
            self._message_in_flight = False
            self._messages_done += 1
            # A blocked write delays the next tick rather than queueing a burst behind it.
            self._next_send_at = max(self._scheduled_at + self._plan.send.period_s, time.monotonic())

    def enter_pool(self, reuse: SendPlan) -> None:
        """The reply came: the connection goes back to the pool, unread and unwatched, until reused."""
        self._pooled = True
        self._plan = Plan(read=False, echo=False, send=reuse, close_after_s=None)
        self._messages_done = 0
        self._message_in_flight = False
        self._next_send_at = max(self._started_at + reuse.start_delay_s, time.monotonic())

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
        self.report(wire.Event.CLOSING, how="shutdown", **({"unsent": unsent} if unsent else {}))

    def fail(self, op: str, exc: OSError) -> None:
        self.report(wire.Event.ERROR, **describe_error(op, exc))
        self.finish()

    def finish(self) -> None:
        # Whatever the app still held (echo backlog, a blocked message) dies with the socket.
        unsent = len(self._pending)
        self._sock.close()
        self._done = True
        self.report(wire.Event.CLOSED, **({"unsent": unsent} if unsent else {}))
