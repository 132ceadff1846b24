"""One capture's analysis shared between processes, by connection.

Every process reads the whole capture (`chunks`) and keeps the segments of its own connections:
a hash of the connection's addresses and ports (`part_of`, the same for both directions) picks
the process. The reader takes that as its filter (`Share`), so that only this process's segments
are taken out of each chunk's decoded records (rather than all of them, then this process's out
of those: 0.35 s of CPU a process for a million segments against 0.14, with `columns.decode`'s
row per field). Connections are independent, so each process runs the pass on its own
connections. Reading twice is cheaper than dealing out: reading a million records as columns
takes 0.2 to 0.4 s of CPU (compiled walks), while splitting each chunk for the children and
sending the parts through a pipe kept the parent, the only reader, busy longer than the child,
which waited for its segments (measured: 2.4 s against 2.0 s for the whole shared part of a
million segments in 9,547 connections, 2 processes; 12% faster for the whole command). And every
process has the same work, so the shares are equal. Children send their summaries back
(pickled), or, with a `Renderer` (`analyze_rendered`), their connections already rendered as
text, encoded as the output is (`body`: one buffer and the texts' lengths, much cheaper to send
and to join than the objects or the strings), with their totals folded (`totals.Fold`): before
they render, each tells the parent its connections' first frames, and the parent gives each its
connections' numbers (`stream`, their rank among all by first frame); the parent joins the texts
as bytes in that order, and merges the totals each process folded from its tallies. The result
is what one process gives, byte for byte in the CLI's output; `tests/unit/tcp/test_parallel.py`
checks that.

Fork is used (where the platform has it) so that children start in milliseconds with the
modules (and the compiled functions) already loaded. Captures under `sizing.SHARED_BYTES` stay
in one process: there forking costs more than it saves.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import multiprocessing
import os
import pickle
import queue
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from orchestrator.errors import TcpscenError
from orchestrator.kernel.predict import capture_end
from orchestrator.pcap.chunks import read_chunks
from orchestrator.pcap.columns import Chunk
from orchestrator.pcap.reader import IcmpError, TcpCapture, TcpPacket
from orchestrator.tcp.analysis import Analysis, analysis_of, analyze_capture
from orchestrator.tcp.body import Encoded, EncodedBody, encode_texts, join_encoded
from orchestrator.tcp.compiled import Pass, Plan, plan_for
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.loop import summarize_pass
from orchestrator.tcp.sizing import size_of
from orchestrator.tcp.totals import Fold, Tally, Totals

__all__ = [
    "Rendered",
    "Renderer",
    "Share",
    "analyze_rendered",
    "analyze_shared",
    "part_of",
    "summarize_chunks",
]

# A connection's process is a hash of its addresses and ports, the same for both directions
# (xor), spread by Fibonacci hashing so that neighbouring ports land apart; `Share` computes it
# with numpy for columns and with `part_of` for packets, and both must agree.
_MIX = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1
_MIX_NP = np.uint64(_MIX)
I64 = npt.NDArray[np.int64]

# The parent's own summaries of the last rendered analysis, kept: freeing them object by object
# when `_share` returned took 0.017 s of its serial tail (4,773 connections). They go with the
# next one, or with the process (the CLI ends without the interpreter's teardown).
_kept: list[list[ConnectionSummary]] = []


def part_of(src: str, sport: int, dst: str, dport: int, parts: int) -> int:
    """Which of `parts` processes a segment's connection is in, as `Share.rows` puts IPv4."""
    return (((_fold(src) ^ _fold(dst) ^ ((sport ^ dport) << 32)) * _MIX & _M64) >> 32) % parts


@functools.lru_cache(maxsize=1 << 16)
def _fold(addr: str) -> int:
    """An address as the hash sees it: IPv4 as its 32-bit number; IPv6 folded to 64 bits."""
    n = int(ipaddress.ip_address(addr))
    return (n ^ (n >> 64)) & _M64 if ":" in addr else n


@dataclass(frozen=True, slots=True)
class Share:
    """The segments of process `part` of `processes`, as the reader's filter (`chunks.RowFilter`)."""

    part: int
    processes: int

    def rows(self, src: I64, sport: I64, dst: I64, dport: I64) -> npt.NDArray[np.bool_]:
        """Which segments are this share's, from their columns (IPv4 addresses as numbers)."""
        x = (src ^ dst).view(np.uint64) ^ ((sport ^ dport) << 32).view(np.uint64)  # all below 2**48
        x *= _MIX_NP
        x >>= np.uint64(32)
        p = self.processes
        if p & (p - 1) == 0:  # a power of two: the remainder is the low bits
            x &= np.uint64(p - 1)
        else:
            x %= np.uint64(p)
        mine: npt.NDArray[np.bool_] = x == np.uint64(self.part)
        return mine

    def packet(self, p: TcpPacket) -> bool:
        """Whether one segment is this share's."""
        return part_of(p.src, p.sport, p.dst, p.dport, self.processes) == self.part


class Renderer(Protocol):
    """Turns connections into text where they were analysed, so that only text (and the totals
    folded from each connection's small `Tally`) crosses between processes: `render` gets
    the connections numbered (`stream`) among all the processes' ones. The output has `joiner`
    between two connections' texts."""

    joiner: str

    def render(
        self, conns: list[ConnectionSummary], end: float | None, icmp_errors: list[IcmpError]
    ) -> list[tuple[str, Tally]]: ...


@dataclass(slots=True)
class Rendered:
    """A shared analysis whose connections came back as text: the file's counters (its
    `connections` is empty), the connections' texts joined in tcp.stream order, and their totals."""

    analysis: Analysis
    body: EncodedBody
    totals: Totals


def analyze_shared(capture: TcpCapture, processes: int) -> Analysis:
    """Analyse `capture` with `processes` processes (1: in this one)."""
    if processes <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return analyze_capture(capture)
    analysis, parts = _share(capture, processes, None)
    conns = [c for part in parts for c in part]
    conns.sort(key=_first_frame)
    for stream, c in enumerate(conns):
        c.stream = stream
    analysis.connections = conns
    return analysis


def analyze_rendered(
    capture: TcpCapture, processes: int, renderer: Renderer, encoding: str = "utf-8", errors: str = "strict"
) -> Rendered:
    """Analyse `capture` with `processes` (> 1) processes, each rendering its connections and
    encoding their texts (as the output will: `encoding`, `errors`)."""
    analysis, parts = _share(capture, processes, _Rendering(renderer, encoding, errors))
    joined = join_encoded([(p.streams, p.encoded) for p in parts], renderer.joiner.encode(encoding, errors))
    fold = parts[0].fold
    for p in parts[1:]:
        fold.merge(p.fold)
    return Rendered(analysis, EncodedBody(joined, encoding, errors), fold.totals())


def summarize_chunks(chunks: Iterable[Chunk], passing: Pass) -> list[ConnectionSummary]:
    """One process's share: `passing` over its chunks, then the summaries."""
    return summarize_pass(lambda: passing(chunks))


def _first_frame(c: ConnectionSummary) -> int:
    return c.first_frame.frame if c.first_frame else 0


def _numbers(keys: list[list[int]]) -> list[list[int]]:
    """Each process's connections' tcp.stream, from every process's first frames (`keys`, a
    list per process): their rank among all, as one process numbers them (in order of first
    frame). Known before rendering, so that no text is renumbered afterwards."""
    every = np.array([k for part in keys for k in part], dtype=np.int64)
    rank = np.empty(len(every), dtype=np.int64)
    rank[np.argsort(every, kind="stable")] = np.arange(len(every), dtype=np.int64)
    out, at = [], 0
    for part in keys:
        out.append(rank[at : at + len(part)].tolist())
        at += len(part)
    return out


@dataclass(frozen=True, slots=True)
class _Rendering:
    """How each process renders its connections, and encodes their texts."""

    renderer: Renderer
    encoding: str
    errors: str


@dataclass(slots=True)
class _Part:
    """One process's connections rendered: their tcp.stream numbers and texts, and their totals
    folded (much smaller than their tallies, and folded in parallel)."""

    streams: list[int]
    encoded: Encoded
    fold: Fold


def _share(capture: TcpCapture, processes: int, renderer: _Rendering | None) -> tuple[Analysis, list[Any]]:
    """The parent's part of a shared analysis: children started, its own share analysed (and
    rendered), the children's parts collected."""
    ctx = multiprocessing.get_context("fork")
    plan = plan_for(capture)  # before the fork: the children inherit what it compiled
    capture.limit = size_of(capture) or None  # every process reads the same bytes, even of a growing file
    children: list[tuple[multiprocessing.process.BaseProcess, Any, Connection]] = []
    try:
        for part in range(1, processes):
            inbox = ctx.Queue(1)  # the capture's end, for the predictions (with a renderer)
            receive, send = ctx.Pipe(duplex=False)
            child = ctx.Process(
                target=_child,
                args=(capture, plan, part, processes, inbox, send, renderer),
                name=f"tcpscen-analyze-{part}",
                daemon=True,
            )
            child.start()
            send.close()
            children.append((child, inbox, receive))
        mine = summarize_chunks(read_chunks(capture, plan.walks, Share(0, processes)), plan.passing)
        analysis = analysis_of(capture, [])
        if renderer is None:
            return analysis, [mine] + [_receive(forked, receive, capture) for forked, _i, receive in children]
        # The capture's end (for the predictions) is the latest last segment of all connections;
        # the connections' numbers, their rank by first frame among all.
        heard = [_keys(mine)] + [_receive(forked, receive, capture) for forked, _i, receive in children]
        known = [e for e, _keys_ in heard if e is not None]
        end = max(known) if known else None
        numbers = _numbers([k for _e, k in heard])
        for (forked, inbox, _r), streams in zip(children, numbers[1:], strict=True):
            _put(forked, inbox, (end, analysis.icmp_errors, streams))
        own = _render(renderer, mine, numbers[0], end, analysis.icmp_errors)
        _kept[:] = [mine]
        return analysis, [own] + [_receive(forked, receive, capture) for forked, _i, receive in children]
    finally:
        capture.limit = None
        for forked, inbox, receive in children:
            receive.close()
            if forked.is_alive():
                forked.terminate()
            forked.join()
            inbox.close()
            inbox.cancel_join_thread()


def _keys(conns: list[ConnectionSummary]) -> tuple[float | None, list[int]]:
    """What the parent needs of a process's connections before they are rendered: their latest
    segment's time and their first frames."""
    return capture_end(conns), [_first_frame(c) for c in conns]


def _render(
    rendering: _Rendering,
    conns: list[ConnectionSummary],
    streams: list[int],
    end: float | None,
    icmp: list[IcmpError],
) -> _Part:
    for c, stream in zip(conns, streams, strict=True):
        c.stream = stream
    rendered = rendering.renderer.render(conns, end, icmp)
    encoded = encode_texts([text for text, _t in rendered], rendering.encoding, rendering.errors)
    fold = Fold()
    for stream, (_text, tally) in zip(
        streams, rendered, strict=True
    ):  # streams rise: each process's own order
        fold.add(stream, tally)
    return _Part(streams, encoded, fold)


def _put(child: multiprocessing.process.BaseProcess, inbox: Any, item: object) -> None:
    """Send a child its next item, waiting while it is busy, but not for a child that has died."""
    while True:
        try:
            inbox.put(item, timeout=0.2)
            return
        except queue.Full:
            if not child.is_alive():
                raise TcpscenError(f"an analysis process ended early (exit {child.exitcode})") from None


def _child(
    capture: TcpCapture,
    plan: Plan,
    part: int,
    processes: int,
    inbox: Any,
    send: Connection,
    renderer: _Rendering | None,
) -> None:
    """In a forked child: read the capture, analyse its own connections (`part`) and send back
    their summaries, or, with a renderer, the latest time among them and their first frames,
    then (once the parent has told the capture's end and their numbers) their texts. Then leave
    without running the parent's exit handlers (they belong to the parent). Ctrl-C is the
    parent's to handle (it stops the children); SIGTERM from it ends a child at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = 0
    try:
        conns = summarize_chunks(read_chunks(capture, plan.walks, Share(part, processes)), plan.passing)
        if renderer is None:
            send.send_bytes(pickle.dumps(conns, protocol=pickle.HIGHEST_PROTOCOL))
        else:
            send.send_bytes(pickle.dumps(_keys(conns), protocol=pickle.HIGHEST_PROTOCOL))
            end, icmp, streams = inbox.get()
            rendered = _render(renderer, conns, streams, end, icmp)
            send.send_bytes(pickle.dumps(rendered, protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException as exc:  # reported to the parent, whatever it is
        code = 1
        with contextlib.suppress(BaseException):  # else the parent sees the pipe close
            send.send_bytes(pickle.dumps(_Failure(f"{type(exc).__name__}: {exc}")))
    finally:
        send.close()
        sys.stdout.flush()
        os._exit(code)


@dataclass(frozen=True, slots=True)
class _Failure:
    what: str


def _receive(child: multiprocessing.process.BaseProcess, receive: Connection, capture: TcpCapture) -> Any:
    try:
        got = pickle.loads(receive.recv_bytes())  # from our own forked child
    except EOFError:
        child.join()
        raise TcpscenError(
            f"{capture.path}: an analysis process ended without a result (exit {child.exitcode})"
        ) from None
    if isinstance(got, _Failure):
        raise TcpscenError(f"{capture.path}: an analysis process failed: {got.what}")
    return got
