"""The vectorised pass: most segments are analysed a chunk at a time by numpy, the rest by the
reference loop (`analysis._run`), and the result is the same.

Most segments of a capture are dull: in-order data or a plain ACK, window open, acknowledging
nothing unseen. For those the reference loop's short way only moves a few fields forward (next
sequence number, last ACK, window, duplicate-ACK count, the unacknowledged segments), and a run
of them can be applied in one step. So, per chunk of columns (`columns`):

1. numpy sorts the chunk by connection (stably, so each connection keeps its order; different
   connections are independent) and marks each segment *dull* or not from its own header and
   its predecessors in the chunk: ACK only, window open, not one byte, in sequence (it starts
   where its direction's highest sequence number so far ends), ACK not going backwards and not
   beyond what the peer sent (a duplicate ACK is dull: the step counts it);
2. consecutive dull segments of one connection form a *run*; per run numpy finds what the step
   needs (each direction's first and last segment, last data, the peer's last ACK, which sent
   segments stay unacknowledged, ...);
3. in order, each run is checked against the connection's state (the flow is on the short way,
   the run starts at its next expected sequence number, and so on) and then applied in one
   step, or, if any check fails, handed to the reference loop segment by segment, as is every
   segment that is not dull.

The checks are conservative: anything in doubt goes to the loop. Connections are then numbered
in order of first segment, as the loop numbers them. `tests/unit/test_vector.py` compares this
pass with the loop on captures of every kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from orchestrator.pcap.columns import Chunk, Columns
from orchestrator.pcap.links import ip4_names
from orchestrator.pcap.reader import TcpPacket
from orchestrator.tcp.analysis import MAX_UNACKED, _run, _summarize
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.flows import HALF, KA, M32, Conn, Flow
from orchestrator.tcp.segments import FlowKey

__all__ = ["analyze_chunks", "summarize_chunks"]

I64 = npt.NDArray[np.int64]
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_new = tuple.__new__


def analyze_chunks(chunks: Iterable[Chunk]) -> list[Conn]:
    """The connections of a capture read by `columns.read_chunks`, in tcp.stream order."""
    flows: dict[FlowKey, Flow] = {}
    conns: list[Conn] = []
    for chunk in chunks:
        if chunk.pairs is not None:
            _run(chunk.pairs, None, flows, conns)
        elif chunk.columns is not None:
            _run(_Pass(chunk.columns, flows).stream(), None, flows, conns)
    conns.sort(key=lambda c: c.first_i)
    for k, c in enumerate(conns):
        c.index = k
    return conns


def _reduce_max(values: I64, starts: I64) -> list[int]:
    return np.maximum.reduceat(values, starts).tolist()  # type: ignore[no-any-return]


@dataclass(slots=True)
class _Side:
    """Per run, for one direction (0: sent by the lower address:port), rows of the sorted chunk
    (-1, or n for `head` and `acked_upto`: none) and counts."""

    head: I64  # its first segment in the run
    last: I64  # its last segment
    last_data: I64  # its last segment with data
    n_data: I64
    changed: I64  # 1 if its ACK changed between its segments within the run
    dups: I64  # duplicate ACKs among its segments after its first
    dups_after: I64  # those after the last change of its ACK
    before_peer: I64  # its last segment before the peer's first one in the run
    popped_last: I64  # its last data segment that the peer's ACKs in the run acknowledge
    acked_upto: I64  # the peer's segment whose ACK acknowledged popped_last first

    def values(self, seq: I64, ack: I64, win: I64, plen: I64, end: I64, tns: I64) -> list[tuple[int, ...]]:
        """Per run, what `_Pass.stream` needs of this side, as Python numbers."""
        n = len(seq)

        def at(rows: I64, col: I64) -> I64:
            return col[np.clip(rows, 0, n - 1)]

        cols = (
            self.last >= 0,
            at(self.head, seq),
            at(self.head, ack),
            at(self.head, win),
            at(self.head, plen),
            at(self.last, ack),
            at(self.last, tns),
            at(self.last, win),
            at(self.last_data, end),
            at(self.last_data, tns),
            self.n_data,
            self.changed,
            self.dups,
            self.dups_after,
            self.before_peer >= 0,
            at(self.before_peer, ack),
            self.popped_last >= 0,
            self.acked_upto < n,
            at(self.acked_upto, ack),
            self.last,
        )
        return list(zip(*(c.tolist() for c in cols), strict=True))


class _Pass:
    """One chunk of columns: classification by numpy, then the stream for the loop."""

    def __init__(self, cols: Columns, flows: dict[FlowKey, Flow]) -> None:  # noqa: PLR0915 - numpy, top-down
        self.cols = cols
        self.flows = flows
        n = len(cols.pos)
        a = (cols.src << 16) | cols.sport
        b = (cols.dst << 16) | cols.dport
        lo = np.minimum(a, b)
        hi = np.maximum(a, b)
        order = np.argsort((lo.astype(np.uint64) * _K1) ^ (hi.astype(np.uint64) * _K2), kind="stable")
        lo, hi = lo[order], hi[order]
        d = (a[order] != lo).astype(np.int64)  # 0: sent by the lo side
        seq = cols.seq[order]
        ack = cols.ack[order]
        flags = cols.flags[order]
        win = cols.window[order]
        plen = cols.payload_len[order]
        end = (seq + plen) & M32
        idx = np.arange(n, dtype=np.int64)
        seg = np.ones(n, dtype=np.bool_)
        seg[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
        segid = np.cumsum(seg, dtype=np.int64)
        dull = ((flags & 0x17) == 0x10) & (win != 0) & (plen != 1) & (seq != 0) & (lo != hi)
        # The previous segment of the same direction, and the latest of the other, in the segment.
        p = np.full(n, -1, dtype=np.int64)
        for side in (0, 1):
            m = np.flatnonzero(d == side)
            if len(m) > 1:
                p[m[1:]] = np.where(segid[m[1:]] == segid[m[:-1]], m[:-1], -1)
        last0 = np.maximum.accumulate(np.where(d == 0, idx, -1))
        last1 = np.maximum.accumulate(np.where(d == 1, idx, -1))
        r = np.where(d == 0, last1, last0)
        r = np.where((r >= 0) & (segid[np.maximum(r, 0)] == segid), r, -1)
        hasp, pp = p >= 0, np.maximum(p, 0)
        hasr, rr = r >= 0, np.maximum(r, 0)
        in_order, known = _in_order(seg, d, seq, flags, plen)
        after_prev = in_order & (((ack - ack[pp]) & M32) < HALF)  # the ACK does not go backwards
        fits = self._fits_state(order, seg, segid, d, seq)
        dull &= np.where(known, after_prev & hasp, fits & ~hasp)
        runid = _runs(dull, seg)
        # An ACK beyond what the peer sent in the run is left to the loop ("ACKed unseen").
        dull &= ~(hasr & (runid[rr] == runid) & (runid >= 0) & (((end[rr] - ack) & M32) >= HALF))
        runid = _runs(dull, seg)
        in_run_p = hasp & dull & (runid[pp] == runid)
        in_run_r = hasr & dull & (runid[rr] == runid)
        starts = np.flatnonzero(dull & ((runid != np.r_[-1, runid[:-1]]) | seg))
        self.order = order
        self.d, self.seq, self.ack, self.win, self.plen, self.end = d, seq, ack, win, plen, end
        self.dull = dull
        self.runid = runid
        self.starts = starts
        self.n_runs = len(starts)
        if not len(starts):
            self.sides: tuple[_Side, _Side] | None = None
            self.run_last = self.run_last_data = self.run_len = []
            self.keep_new = np.zeros(0, dtype=np.int64)
            self.popped = np.zeros(n, dtype=np.bool_)
            return
        neutral_max = np.full(n, -1, dtype=np.int64)
        run_rows = np.where(dull, idx, neutral_max)
        self.run_last = _reduce_max(run_rows, starts)
        self.run_len = np.add.reduceat(dull.astype(np.int64), starts).tolist()
        data = dull & (plen > 0)
        self.run_last_data = _reduce_max(np.where(data, idx, neutral_max), starts)
        # The peer's last ACK in the run, for each segment's run: what its data is checked against.
        last_of = [
            np.maximum.reduceat(np.where(dull & (d == side), idx, neutral_max), starts) for side in (0, 1)
        ]
        rid = np.maximum(runid, 0)
        peer_last = np.where(d == 0, last_of[1][rid], last_of[0][rid])
        peer_ack = ack[np.maximum(peer_last, 0)]
        popped = data & (peer_last >= 0) & (((peer_ack - end) & M32) < HALF)
        self.keep_new = np.flatnonzero(data & ~popped)
        self.popped = popped
        changes = in_run_p & (ack != ack[pp])
        dup = in_run_p & (plen == 0) & (ack == ack[pp]) & (win == win[pp])
        sides = []
        for side in (0, 1):
            mine = dull & (d == side)
            last_change = np.maximum.reduceat(np.where(changes & mine, idx, neutral_max), starts)[rid]
            sides.append(
                _Side(
                    head=np.minimum.reduceat(np.where(mine, idx, n), starts),
                    last=last_of[side],
                    last_data=np.maximum.reduceat(np.where(data & mine, idx, neutral_max), starts),
                    n_data=np.add.reduceat((data & mine).astype(np.int64), starts),
                    changed=np.maximum.reduceat((mine & changes).astype(np.int64), starts),
                    dups=np.add.reduceat((mine & dup).astype(np.int64), starts),
                    dups_after=np.add.reduceat((mine & dup & (idx > last_change)).astype(np.int64), starts),
                    before_peer=np.maximum.reduceat(np.where(mine & ~in_run_r, idx, neutral_max), starts),
                    popped_last=np.maximum.reduceat(np.where(popped & mine, idx, neutral_max), starts),
                    acked_upto=np.zeros(0, dtype=np.int64),
                )
            )
        for side in (0, 1):
            # The first segment of the peer after `popped_last` whose ACK covers it.
            e_of_row = sides[side].popped_last[rid]
            ee = np.maximum(e_of_row, 0)
            cand = dull & (d != side) & (e_of_row >= 0) & (idx > e_of_row) & (((ack - end[ee]) & M32) < HALF)
            sides[side].acked_upto = np.minimum.reduceat(np.where(cand, idx, n), starts)
        self.sides = (sides[0], sides[1])

    def _fits_state(
        self, order: I64, seg: npt.NDArray[np.bool_], segid: I64, d: I64, seq: I64
    ) -> npt.NDArray[np.bool_]:
        """Whether each segment starts at its flow's next expected seq as the chunk starts, and
        the flow takes the short way: a guess for each connection's first segment of each
        direction in the chunk, checked again when its run is applied, that keeps most doomed
        runs from being tried."""
        cols, names, get = self.cols, ip4_names, self.flows.get
        firsts = np.flatnonzero(seg)
        first = order[firsts]
        expected = np.full((len(first), 2), -1, dtype=np.int64)
        for k, (src, sport, dst, dport, side) in enumerate(
            zip(
                cols.src[first].tolist(),
                cols.sport[first].tolist(),
                cols.dst[first].tolist(),
                cols.dport[first].tolist(),
                d[firsts].tolist(),
                strict=True,
            )
        ):
            f = get((names[src], sport, names[dst], dport))
            if f is not None:
                for g, gs in ((f, side), (f.rev, 1 - side)):
                    if not g.slow and g.nextseq:
                        expected[k, gs] = g.nextseq
        return expected[segid - 1, d] == seq  # type: ignore[no-any-return]

    # -- the stream the loop consumes -------------------------------------------------------

    def stream(self) -> Iterator[tuple[int, TcpPacket]]:  # noqa: PLR0915 - one generator, its helpers inside
        """Segments that are not dull, and runs that fail a check, as (position, segment) for
        the loop; the other runs are applied here, in between, in the same order."""
        cols, order, dull = self.cols, self.order, self.dull
        odd = np.flatnonzero(~dull)
        wanted = (odd, self.run_last, self.run_last_data, self.keep_new)
        rows = np.unique(np.concatenate([np.asarray(x, dtype=np.int64) for x in wanted]))
        rows = rows[rows >= 0]
        pk: dict[int, TcpPacket] = dict(zip(rows.tolist(), cols.packets(order[rows]), strict=True))
        runid, d = self.runid, self.d
        keep = self.keep_new
        keep_by_run: dict[tuple[int, int], list[tuple[int, TcpPacket, int]]] = {}
        for k, rid, side, e, i in zip(
            keep.tolist(),
            runid[keep].tolist(),
            d[keep].tolist(),
            self.end[keep].tolist(),
            cols.pos[order[keep]].tolist(),
            strict=True,
        ):
            keep_by_run.setdefault((rid, side), []).append((e, pk[k], i))
        tns_sorted = cols.tns[order]
        sides = self.sides
        per_side = (
            sides[0].values(self.seq, self.ack, self.win, self.plen, self.end, tns_sorted) if sides else [],
            sides[1].values(self.seq, self.ack, self.win, self.plen, self.end, tns_sorted) if sides else [],
        )
        names = ip4_names
        first_rows = order[self.starts]
        keys = zip(
            [names[x] for x in cols.src[first_rows].tolist()],
            cols.sport[first_rows].tolist(),
            [names[x] for x in cols.dst[first_rows].tolist()],
            cols.dport[first_rows].tolist(),
            strict=True,
        )
        runs = dict(
            zip(
                self.starts.tolist(),
                zip(range(self.n_runs), keys, self.run_last, self.run_len, self.run_last_data, strict=True),
                strict=True,
            )
        )
        get = self.flows.get
        this = self

        def apply(start: int) -> bool:  # noqa: PLR0915 - the checks, then the step
            j, key, run_last, run_len, run_last_data = runs[start]
            fwd = get(key)
            if fwd is None:
                return False
            flows = (fwd, fwd.rev) if this.d[start] == 0 else (fwd.rev, fwd)
            info = (per_side[0][j], per_side[1][j])
            acked_upto: list[int | None] = [None, None]
            moves: list[int | None] = [None, None]  # the peer's last ACK, when its ACKs moved
            replays = [False, False]
            for side in (0, 1):
                f, g = flows[side], flows[1 - side]
                (present, h_seq, _ha, _hw, _hp, _la, _lt, _lw, ld_end, _ldt, n_data, _ch, _du, _dua,
                 has_bp, bp_ack, popped, au_ok, au_ack, _last) = info[side]  # fmt: skip
                (p_present, _ps, p_head_ack, _pw, _pp, p_last_ack, _plt, _plw, _pe, _pet, _pn, p_changed,
                 *_rest) = info[1 - side]  # fmt: skip
                q = f.unacked
                if present:
                    if f.slow or not f.nextseq or h_seq != f.nextseq:
                        return False
                    if f.maxseq != f.nextseq:
                        # Behind: a segment before it was not captured. Fine while the peer's
                        # ACKs stay at or below it (else "ACKed unseen" moves it); the run's
                        # data, which starts at nextseq, cannot reach it.
                        lag = (f.nextseq - f.maxseq) & M32
                        if not f.maxseq or not 0 < lag < HALF:
                            return False
                        if p_present and 0 < ((p_last_ack - f.maxseq) & M32) < HALF:
                            return False
                        if n_data and ((ld_end - f.nextseq) & M32) >= HALF - lag:
                            return False
                    if has_bp:
                        mark = g.maxseq
                        if mark and bp_ack != mark and 0 < ((bp_ack - mark) & M32) < HALF:
                            return False  # an ACKed unseen segment
                    if n_data and g.lastack and ((f.nextseq - g.lastack) & M32) >= HALF:
                        return False  # its data could be spurious retransmissions
                if len(q) + n_data >= MAX_UNACKED:
                    return False
                if not p_present or not (p_changed or p_head_ack != g.lastack):
                    continue  # no ACK of the peer's moved: nothing leaves the queue
                if f.messy and q:
                    replays[side] = True
                    continue
                if q and ((g.lastack - q[0][0]) & M32) < HALF:
                    return False  # a segment the peer acknowledged is still queued: unusual
                moves[side] = p_last_ack
                if popped:
                    if not au_ok:
                        return False
                    acked_upto[side] = au_ack
                else:
                    covered = None
                    for entry in q:
                        if ((p_last_ack - entry[0]) & M32) >= HALF:
                            break
                        covered = entry[0]
                    if covered is not None:
                        acked_upto[side] = this._first_covering(start, run_last, 1 - side, covered)
                        if acked_upto[side] is None:
                            return False
            # The step.
            conn: Conn = fwd.conn
            conn.last = pk[run_last]
            conn.packets += run_len
            if run_last_data >= 0:
                conn.last_activity = pk[run_last_data]
            old_acks = (flows[0].lastack, flows[1].lastack)
            for side in (0, 1):
                f = flows[side]
                (present, _hs, h_ack, h_win, h_plen, l_ack, l_tns, l_win, ld_end, ld_tns, n_data, changed,
                 dups, dups_after, *_rest) = info[side]  # fmt: skip
                if not present:
                    continue
                head_dup = h_plen == 0 and h_ack == f.lastack and h_win == f.window
                if flows[1 - side].lastflags & KA:  # the peer's probe is pending: these answer it
                    f.ka_acks += dups + head_dup
                    if changed or h_ack != f.lastack:
                        f.dupacks = 0
                elif changed:
                    f.dupacks = dups_after
                elif h_ack != f.lastack:
                    f.dupacks = dups
                elif head_dup:  # the first is a duplicate too
                    f.dupacks = max(f.dupacks, 0) + 1 + dups
                elif dups:
                    f.dupacks = max(f.dupacks, 0) + dups
                f.lastack = l_ack
                f.lastack_t = l_tns
                f.window = l_win
                if n_data:
                    if f.maxseq == f.nextseq:
                        f.maxseq = ld_end
                    f.nextseq = ld_end
                    f.nextseq_t = ld_tns
            for side in (0, 1):
                f = flows[side]
                q = f.unacked
                if replays[side]:
                    this._replay(f, side, old_acks[1 - side], start, run_last, pk)
                    continue
                top = moves[side]
                runs_f = f.runs
                if top is not None:
                    while q and ((top - q[0][0]) & M32) < HALF:
                        entry = q.popleft()
                        if runs_f:
                            runs_f.pop(entry[1].seq, None)
                    if runs_f:  # retransmitted segments: forget those acknowledged, as the loop does
                        mine = this.popped[start : run_last + 1] & (d[start : run_last + 1] == side)
                        for sq in this.seq[start : run_last + 1][mine].tolist():
                            runs_f.pop(sq, None)
                q.extend(keep_by_run.get((j, side), ()))
                if acked_upto[side] is not None:
                    f.acked_upto = acked_upto[side]
            return True

        dull_l = dull.tolist()
        for k in np.flatnonzero(dull ^ True | _at(self.starts, len(dull))).tolist():
            if not dull_l[k]:
                yield int(cols.pos[order[k]]), pk[k]
            elif not apply(k):
                last = runs[k][2]
                rows_j = np.flatnonzero(dull[k : last + 1]) + k
                yield from zip(cols.pos[order[rows_j]].tolist(), cols.packets(order[rows_j]), strict=True)

    # -- the rare walks over a run ----------------------------------------------------------

    def _first_covering(self, first: int, last: int, side: int, target: int) -> int | None:
        """The first ACK of `side` in the run at rows first..last that covers `target`."""
        span = slice(first, last + 1)
        for a, s, dl in zip(
            self.ack[span].tolist(), self.d[span].tolist(), self.dull[span].tolist(), strict=True
        ):
            if dl and s == side and ((a - target) & M32) < HALF:
                return int(a)
        return None

    def _replay(
        self, f: Flow, side: int, prev_ack: int, first: int, last: int, pk: dict[int, TcpPacket]
    ) -> None:
        """The loop's own bookkeeping of `f.unacked` over the run, for a queue that may be out of
        sequence order: segments appended as sent, dropped as the peer's ACKs move."""
        q, runs_f = f.unacked, f.runs
        span = slice(first, last + 1)
        cols = self.cols
        rows = range(first, last + 1)
        sent: dict[int, int] = {}  # position -> row, of this run's segments in the queue
        for k, dl, s, a, e, pl, i in zip(
            rows,
            self.dull[span].tolist(),
            self.d[span].tolist(),
            self.ack[span].tolist(),
            self.end[span].tolist(),
            self.plen[span].tolist(),
            cols.pos[self.order[span]].tolist(),
            strict=True,
        ):
            if not dl:
                continue
            if s == side:
                if pl:
                    sent[i] = k
                    q.append((e, pk.get(k), i))  # type: ignore[arg-type] # filled in below
                continue
            if a != prev_ack and q and ((a - q[0][0]) & M32) < HALF:
                f.acked_upto = a
                while q and ((a - q[0][0]) & M32) < HALF:
                    _end, p, pos = q.popleft()
                    if runs_f:
                        runs_f.pop(p.seq if p is not None else int(self.seq[sent[pos]]), None)
            prev_ack = a
        for n, (e, p, i) in enumerate(q):  # segments of the run still queued need their packet
            if p is None:
                q[n] = (e, cols.packets(self.order[[sent[i]]])[0], i)


def _at(rows: I64, n: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros(n, dtype=np.bool_)
    mask[rows] = True
    return mask


def _in_order(
    seg: npt.NDArray[np.bool_], d: I64, seq: I64, flags: I64, plen: I64
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Whether each segment starts where its direction's highest sequence number so far in the
    chunk ends (the loop's next expected seq, as far as the chunk tells), and whether the chunk
    tells (an earlier segment of that direction since the connection's latest SYN)."""
    n = len(seq)
    ctl = ((flags & 0x03) != 0).astype(np.int64)  # SYN and FIN take a sequence number
    ends = (seq + plen + ctl) & M32
    grp = np.cumsum(seg | ((flags & 0x02) != 0))  # a SYN may reset what is expected: start again
    ok = np.zeros(n, dtype=np.bool_)
    known = np.zeros(n, dtype=np.bool_)
    for side in (0, 1):
        m = np.flatnonzero(d == side)
        if len(m) < 2:
            continue
        g = grp[m]
        fresh = np.ones(len(m), dtype=np.bool_)
        fresh[1:] = g[1:] != g[:-1]
        step = ((ends[m][1:] - ends[m][:-1] + HALF) & M32) - HALF  # signed: unwrap
        u = np.zeros(len(m), dtype=np.int64)
        np.cumsum(np.where(fresh[1:], 0, step), out=u[1:])
        u -= u[np.maximum.accumulate(np.where(fresh, np.arange(len(m)), 0))]  # from the group's start
        sane = np.abs(u) < (1 << 39)
        top = np.maximum.accumulate((g << 41) + u + (1 << 40))  # running maximum, per group
        before = np.empty(len(m), dtype=np.int64)
        before[0] = 0
        before[1:] = top[:-1] - (g[1:] << 41) - (1 << 40)
        starts_at = u - plen[m] - ctl[m]
        known[m] = ~fresh & sane
        ok[m] = ~fresh & sane & (starts_at == before)
    return ok, known


def _runs(dull: npt.NDArray[np.bool_], seg: npt.NDArray[np.bool_]) -> I64:
    """Run number of each dull segment (consecutive dull segments of one connection), -1 else."""
    start = dull.copy()
    start[1:] &= ~dull[:-1] | seg[1:]
    return np.where(dull, np.cumsum(start) - 1, -1)


def summarize_chunks(chunks: Iterable[Chunk]) -> list[ConnectionSummary]:
    """`analyze_chunks`, then each connection's summary (the collector paused meanwhile)."""
    return _summarize(lambda: analyze_chunks(chunks))
