"""The compiled pass: every segment through the array loop (`arrayloop`, compiled by numba in
`compiled`), and only the segments that leave a fact other than a retransmission through
Python (the loop keeps the retransmissions' facts itself).

Per chunk (`chunks`): each segment gets a direction key (a number per 4-tuple and direction,
from the table of the 4-tuples seen, `keys.KeyTable`); the array
loop runs over the chunk and writes an event for each segment that leaves such a fact; then the
events are replayed, in order, through `segments`' own code (`record_facts`, `control_facts`)
on the connections' Python objects (`flows.Conn`), with the state each fact reads as the loop
found it. At the end, what the summaries read of the loop's state (each direction's
unacknowledged segments, its last ACK, the handshake, its retransmissions and their runs, ...)
is copied onto those objects, and
`summarize` makes the summaries as for the other passes. The result is the same, summary for
summary (`tests/unit/tcp/test_fastpass.py`).

Where the loop keeps a packet (a connection's last segment, its last with data, an
unacknowledged segment, a retransmission kept as evidence, a run's sends), it keeps only its
frame number and times (and, for a run's latest retransmission, its flags, which the notes
read): the summaries read nothing else of them. Those come back as stand-in packets with only
these fields (`_stub`); a direction's retransmissions, of which the summary reads only frame
and time, as its `FrameRef`s at once (`Flow.retx_refs`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from orchestrator.pcap.columns import Chunk
from orchestrator.pcap.reader import TcpPacket
from orchestrator.tcp import arrayloop as al
from orchestrator.tcp import flows as fl
from orchestrator.tcp import keys, loop
from orchestrator.tcp.arrayloop import (
    ACKED_UPTO,
    BEST,
    DUPACKS,
    FIN_EARLY,
    FIRST_RTT,
    HAS_ACKED,
    HS_DONE,
    LA_FRAME,
    LA_TIME,
    LA_TNS,
    LAST_FRAME,
    LAST_TIME,
    LAST_TNS,
    LASTACK,
    LASTACK_T,
    LASTFLAGS,
    MAXSEQ,
    NEXTSEQ,
    NEXTSEQ_T,
    PACKETS,
    Q_HEAD,
    QUICK_N,
    R_ACKED,
    R_COUNT,
    R_END,
    R_FLOW,
    R_FRESH,
    R_GEN,
    R_LFLAGS,
    R_LFRAME,
    R_LPOS,
    R_LTNS,
    R_NEXT,
    R_OFRAME,
    R_OTNS,
    R_SEQ,
    R_SHEAD,
    RETX_N,
    RUN_GEN,
    RUN_HEAD,
    RX_HEAD,
    SEQ_WRAPS,
    WINDOW,
)
from orchestrator.tcp.connection import FrameRef
from orchestrator.tcp.flows import KA, Conn, Flow, Run, Seen
from orchestrator.tcp.keys import grow_flat
from orchestrator.tcp.segments import control_facts, record_facts

__all__ = ["PLAIN", "Kernels", "analyze_arrays", "warm_up"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
_new = tuple.__new__


class Kernels:
    """The array loop's functions, compiled or not."""

    def __init__(
        self, analyze_rows: Callable[..., None], rehash: Callable[..., int], key_rows: Callable[..., None]
    ) -> None:
        self.analyze_rows = analyze_rows
        self.rehash = rehash
        self.key_rows = key_rows


PLAIN = Kernels(al.analyze_rows, al.rehash, keys.key_rows)


def _grow(a: np.ndarray, rows: int) -> np.ndarray:
    """`a` with room for `rows` rows (at least double), its rows kept."""
    if len(a) >= rows:
        return a
    out = np.zeros((max(rows, 2 * len(a)), *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    return out


class _State:
    """The array loop's state between chunks, and the connections' Python objects."""

    def __init__(self, kernels: Kernels) -> None:
        self.k = kernels
        self.keys = keys.KeyTable(kernels.key_rows)  # each segment's direction key
        self.flow_of = np.full(64, -1, dtype=np.int64)
        self.flows = np.zeros((64, al.NF), dtype=np.int64)
        self.conns = np.zeros((32, al.NC), dtype=np.int64)
        self.ctimes = np.zeros((32, al.NT), dtype=np.float64)
        self.queue = np.zeros((0, al.NQ), dtype=np.int64)
        self.qtimes = np.zeros(0, dtype=np.float64)
        self.runs = np.zeros((16, al.NR), dtype=np.int64)
        self.rtimes = np.zeros((16, 2), dtype=np.float64)
        self.table = np.full(64, -1, dtype=np.int64)
        self.xrows = np.zeros((64, al.NX), dtype=np.int64)
        self.xtimes = np.zeros(64, dtype=np.float64)
        self.counts = np.zeros(al.NCOUNTS, dtype=np.int64)
        self.counts[al.FREE_HEAD] = -1
        self.counts[al.FREE_RUN] = -1
        self.counts[al.FREE_X] = -1
        self.objs: list[Conn] = []  # in the order the loop made them (its rows)
        # `xrows` (by column) and `xtimes` as lists, for `finish`.
        self._xframe: list[int] = []
        self._xtns: list[int] = []
        self._xnext: list[int] = []
        self._xtimes: list[float] = []

    def make_room(self, n: int) -> None:
        """Room for a chunk of `n` segments: each may start a connection, a run, queue a
        segment, keep `arrayloop.KEPT_PER_SEGMENT` frames as evidence."""
        cnt = self.counts
        self.flow_of = grow_flat(self.flow_of, self.keys.made)
        need = int(cnt[al.N_CONNS]) + n
        if need > len(self.conns):
            self.conns = _grow(self.conns, need)
            self.ctimes = _grow(self.ctimes, need)
            self.flows = _grow(self.flows, 2 * len(self.conns))
        self.runs = _grow(self.runs, int(cnt[al.N_RUNS]) + n)
        self.rtimes = _grow(self.rtimes, len(self.runs))
        self.xrows = _grow(self.xrows, int(cnt[al.N_X]) + al.KEPT_PER_SEGMENT * n)
        self.xtimes = _grow(self.xtimes, len(self.xrows))
        if 2 * (int(cnt[al.TABLE_USED]) + n) > len(self.table):
            size = 1 << (4 * (int(cnt[al.N_RUNS]) + n)).bit_length()
            self.table = np.full(size, -1, dtype=np.int64)
            cnt[al.TABLE_USED] = self.k.rehash(self.table, self.runs, self.flows, int(cnt[al.N_RUNS]))
        if cnt[al.FREE_N] < n:  # more free queue entries, chained in front of the free ones
            old = len(self.queue)
            size = max(2 * old, old + n - int(cnt[al.FREE_N]), 1024)
            self.queue = _grow(self.queue, size)
            self.qtimes = _grow(self.qtimes, size)
            nxt = self.queue[:, al.Q_NEXT]
            nxt[old : size - 1] = np.arange(old + 1, size, dtype=np.int64)
            nxt[size - 1] = cnt[al.FREE_HEAD]
            cnt[al.FREE_HEAD] = old
            cnt[al.FREE_N] += size - old

    def run(
        self,
        dkey: I64,
        seq: I64,
        ack: I64,
        flags: I64,
        window: I64,
        plen: I64,
        tns: I64,
        pos: I64,
        frame: I64,
        times: F64,
    ) -> tuple[I64, F64]:
        """The array loop over one chunk; returns its events."""
        n = len(dkey)
        self.make_room(n)
        c = np.ascontiguousarray  # one compiled variant: contiguous arrays
        events = np.zeros((n, al.NE), dtype=np.int64)
        etimes = np.zeros(n, dtype=np.float64)
        self.counts[al.N_EVENTS] = 0
        self.k.analyze_rows(
            n,
            c(dkey),
            c(seq),
            c(ack),
            c(flags),
            c(window),
            c(plen),
            c(tns),
            c(pos),
            c(frame),
            c(times),
            self.flow_of,
            self.keys.same,
            self.flows,
            self.conns,
            self.ctimes,
            self.queue,
            self.qtimes,
            self.runs,
            self.rtimes,
            self.table,
            self.xrows,
            self.xtimes,
            self.counts,
            events,
            etimes,
            loop.MAX_UNACKED,
            fl.MAX_UNACKED,
            fl.MAX_RUNS,
            fl.MAX_EVIDENCE,
        )
        k = int(self.counts[al.N_EVENTS])
        return events[:k], etimes[:k]

    def replay(self, events: I64, etimes: F64, packets: list[TcpPacket], positions: list[int]) -> None:
        """The facts of a chunk's events (`packets`, `positions`: theirs), in order."""
        objs = self.objs
        for ev, p, i, rev_time in zip(events.tolist(), packets, positions, etimes.tolist(), strict=True):
            _row, f, ta, new, fwd_lf, fwd_lat, rev_lf, rev_lat, rev_win, rev_la, rev_frame = ev
            if new:
                objs.append(Conn(len(objs), p, i))
            conn = objs[f >> 1]
            fwd, rev = (conn.a, conn.b) if f & 1 == 0 else (conn.b, conn.a)
            # The state these facts read, as the loop found it.
            fwd.lastflags, fwd.lastack_t = fwd_lf, fwd_lat
            rev.lastflags, rev.lastack_t, rev.window, rev.lastack = rev_lf, rev_lat, rev_win, rev_la
            if ta & KA and rev_lat:  # where a keep-alive run counts from
                rev.last_p = _stub(rev_frame, rev_time, rev_lat, p.file)
            if ta & al.EVENT_FACTS:  # a retransmission's facts are the loop's (`finish`)
                record_facts(conn, fwd, rev, p, i, ta & al.EVENT_FACTS, 0)
            if p.flags & 0x07:
                control_facts(fwd, rev, p, i)

    def finish(self, file: str) -> list[Conn]:
        """The connections, with what their summaries read of the loop's state."""
        n = len(self.objs)
        # Every row as Python numbers at once: a row at a time costs a numpy call each.
        conns, ctimes, flows = self.conns[:n].tolist(), self.ctimes[:n].tolist(), self.flows[: 2 * n].tolist()
        used = int(self.counts[al.N_X])
        # By column: a list per row costs twice as much, and a chain is read column by column.
        self._xframe, self._xtns, self._xnext = self.xrows[:used].T.tolist()
        self._xtimes = self.xtimes[:used].tolist()
        queue, qtimes = self.queue, self.qtimes
        for k, c in enumerate(self.objs):
            row, times = conns[k], ctimes[k]
            c.packets = row[PACKETS]
            c.last = _stub(row[LAST_FRAME], times[LAST_TIME], row[LAST_TNS], file)
            if row[LA_FRAME] >= 0:
                c.last_activity = _stub(row[LA_FRAME], times[LA_TIME], row[LA_TNS], file)
            c.handshake_done = bool(row[HS_DONE])
            c.first_rtt = row[FIRST_RTT]
            for f, st in ((c.a, flows[2 * k]), (c.b, flows[2 * k + 1])):
                _finish_flow(f, st, queue, qtimes, file)
                if st[RETX_N]:
                    f.retx = st[RETX_N]
                    f.quick = st[QUICK_N]
                    f.retx_refs = self._refs(st[RX_HEAD], file)
                if f.unacked and st[RUN_HEAD] >= 0:
                    f.runs = self._unacked_runs(st, {e[1].seq for e in f.unacked}, file)
            best = row[BEST]
            if best >= 0:
                c.best_run_flow = c.a if self.runs[best, R_FLOW] == 2 * k else c.b
                c.best_run = self._run(best, file)
        return self.objs

    def _unacked_runs(self, st: list[int], seqs: set[int], file: str) -> dict[int, Run]:
        """The runs of the direction's current generation whose segment is still in its queue
        of unacknowledged ones (`summarize` reads the oldest one's sends); the others are not
        needed, and not made."""
        out: dict[int, Run] = {}
        r, gen = st[RUN_HEAD], st[RUN_GEN]
        while r >= 0:
            row = self.runs[r].tolist()  # not the whole table: few of its rows are read
            if row[R_GEN] == gen and row[R_SEQ] in seqs:
                out[row[R_SEQ]] = self._run(r, file)
            r = row[R_NEXT]
        return out

    def _run(self, r: int, file: str) -> Run:
        """Run `r` of the loop's as the reference's `flows.Run`."""
        row = self.runs[r].tolist()
        first, last = self.rtimes[r].tolist()
        original = _stub(row[R_OFRAME], first, row[R_OTNS], file) if row[R_OFRAME] >= 0 else None
        run = Run(row[R_SEQ], row[R_END], original, bool(row[R_FRESH]), bool(row[R_ACKED]))
        run.count = row[R_COUNT]
        run.sends = self._kept(row[R_SHEAD], file)  # the original first, if captured
        latest = (row[R_LFRAME], last, "", 0, "", 0, 0, 0, row[R_LFLAGS], 0, 0, file, row[R_LTNS])
        run.last = Seen(_new(TcpPacket, latest), row[R_LPOS])  # its flags too: the notes read them
        return run

    def _kept(self, x: int, file: str) -> list[TcpPacket]:
        """The frames of a list of `xrows` from row `x`, as stand-ins."""
        frames, tnss, nxt, xtimes = self._xframe, self._xtns, self._xnext, self._xtimes
        out = []
        while x >= 0:
            out.append(_new(TcpPacket, (frames[x], xtimes[x], "", 0, "", 0, 0, 0, 0, 0, 0, file, tnss[x])))
            x = nxt[x]
        return out

    def _refs(self, x: int, file: str) -> list[FrameRef]:
        """The frames of a list of `xrows` from row `x`, as the summary's `FrameRef`s: all that
        is read of a direction's retransmissions (`Flow.retx_refs`)."""
        frames, nxt, xtimes = self._xframe, self._xnext, self._xtimes
        out = []
        while x >= 0:
            out.append(FrameRef(file, frames[x], xtimes[x]))
            x = nxt[x]
        return out


def _finish_flow(f: Flow, st: list[int], queue: I64, qtimes: F64, file: str) -> None:
    f.nextseq, f.nextseq_t, f.maxseq = st[NEXTSEQ], st[NEXTSEQ_T], st[MAXSEQ]
    f.seq_wraps = st[SEQ_WRAPS]
    f.lastack, f.lastack_t, f.window = st[LASTACK], st[LASTACK_T], st[WINDOW]
    f.dupacks, f.lastflags = st[DUPACKS], st[LASTFLAGS]
    f.acked_upto = st[ACKED_UPTO] if st[HAS_ACKED] else None
    f.acked_fin_early = bool(st[FIN_EARLY])
    e = st[Q_HEAD]
    if e < 0:  # the common end: nothing unacknowledged (the replay never queues a segment)
        if f.unacked:
            f.unacked = deque()
        return
    q: deque[tuple[int, TcpPacket, int]] = deque()
    while e >= 0:
        end, seq, i, frame, tns, nxt = queue[e].tolist()
        q.append((end, _stub(frame, float(qtimes[e]), tns, file, seq), i))
        e = nxt
    f.unacked = q


def _stub(frame: int, time: float, tns: int, file: str, seq: int = 0) -> TcpPacket:
    """A packet known only by where and when (and, for an unacknowledged segment, its seq, by
    which `summarize` finds its run): what summaries read of the packets the loop keeps."""
    return _new(TcpPacket, (frame, time, "", 0, "", 0, seq, 0, 0, 0, 0, file, tns))


def warm_up(kernels: Kernels) -> None:
    """Call both functions once, on nothing: numba compiles (or loads) them on their first call."""
    st = _State(kernels)
    none = np.zeros(0, dtype=np.int64)
    st.run(none, none, none, none, none, none, none, none, none, np.zeros(0, dtype=np.float64))
    kernels.rehash(st.table, st.runs, st.flows, 0)
    st.keys.ip4(none, none)


def analyze_arrays(chunks: Iterable[Chunk], kernels: Kernels = PLAIN) -> list[Conn]:
    """The connections of a capture read by `chunks.read_chunks`, in tcp.stream order."""
    st = _State(kernels)
    file = ""
    for chunk in chunks:
        if chunk.columns is not None:
            cols = chunk.columns
            if not len(cols.pos):
                continue
            file = cols.file
            events, etimes = st.run(
                st.keys.of_columns(cols),
                cols.seq,
                cols.ack,
                cols.flags,
                cols.window,
                cols.payload_len,
                cols.tns,
                cols.pos,
                cols.frame,
                cols.time,
            )
            at = events[:, al.E_ROW]
            st.replay(events, etimes, cols.packets(at), cols.pos[at].tolist())
        elif chunk.pairs:
            pairs = chunk.pairs
            pk = [p for _i, p in pairs]
            file = pk[0].file
            field = list(zip(*pk, strict=True))

            def col(k: int, _f: list[tuple[object, ...]] = field) -> I64:
                return np.array(_f[k], dtype=np.int64)

            events, etimes = st.run(
                st.keys.of_packets(pk),
                col(6),
                col(7),
                col(8),
                col(9),
                col(10),
                col(12),
                np.array([i for i, _p in pairs], dtype=np.int64),
                col(0),
                np.array(field[1], dtype=np.float64),
            )
            at = events[:, al.E_ROW].tolist()
            st.replay(events, etimes, [pk[j] for j in at], [pairs[j][0] for j in at])
    conns = st.finish(file)
    conns.sort(key=lambda c: c.first_i)
    for k, c in enumerate(conns):
        c.index = k
    return conns
