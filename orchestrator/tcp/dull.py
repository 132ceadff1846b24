"""Which segments of a chunk of columns are dull, and what each run of them needs: numpy only.

A segment is *dull* when the reference loop's short way would take it and only move a few fields
forward: ACK only, window open, not one byte, in sequence (it starts where its direction's
highest sequence number so far ends), ACK not going backwards and not beyond what the peer sent
(a duplicate ACK is dull: the step counts it). Consecutive dull segments of one connection form
a *run*; per run this finds what `vector` needs to check it against the connection's state and
apply it in one step (each direction's first and last segment, last data, the peer's last ACK,
which sent segments stay unacknowledged, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from orchestrator.pcap.columns import Columns
from orchestrator.pcap.links import ip4_names
from orchestrator.tcp.flows import HALF, M32, Flow
from orchestrator.tcp.segments import FlowKey

__all__ = ["DullRuns", "Side"]

I64 = npt.NDArray[np.int64]
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)


def _reduce_max(values: I64, starts: I64) -> list[int]:
    return np.maximum.reduceat(values, starts).tolist()  # type: ignore[no-any-return]


@dataclass(slots=True)
class Side:
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
        """Per run, what `vector` needs of this side to apply the run, as Python numbers."""
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


class DullRuns:
    """One chunk of columns, classified: which segments are dull, their runs, and per run what
    applying it in one step needs. Rows are those of the chunk sorted by connection (`order`)."""

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
            self.sides: tuple[Side, Side] | None = None
            self.run_last = self.run_last_data = self.run_len = []
            self.keep_new = np.zeros(0, dtype=np.int64)
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
        changes = in_run_p & (ack != ack[pp])
        dup = in_run_p & (plen == 0) & (ack == ack[pp]) & (win == win[pp])
        sides = []
        for side in (0, 1):
            mine = dull & (d == side)
            last_change = np.maximum.reduceat(np.where(changes & mine, idx, neutral_max), starts)[rid]
            sides.append(
                Side(
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
