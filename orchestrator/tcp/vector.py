"""The vectorised pass: most segments are analysed a chunk at a time by numpy, the rest by the
reference loop (`loop.analyze_stream`), and the result is the same.

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

Steps 1 and 2 are `dull`'s, step 3 is this module's. The checks are conservative: anything in
doubt goes to the loop. Connections are then numbered in order of first segment, as the loop
numbers them. `tests/unit/tcp/test_vector.py` compares this pass with the loop on captures of
every kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

from orchestrator.pcap.columns import Chunk
from orchestrator.pcap.links import ip4_names
from orchestrator.pcap.reader import TcpPacket
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.dull import DullRuns
from orchestrator.tcp.flows import HALF, KA, M32, Conn, Flow
from orchestrator.tcp.loop import MAX_UNACKED, analyze_stream, summarize_pass
from orchestrator.tcp.segments import FlowKey

__all__ = ["analyze_chunks", "summarize_chunks"]

I64 = npt.NDArray[np.int64]


def analyze_chunks(chunks: Iterable[Chunk]) -> list[Conn]:
    """The connections of a capture read by `chunks.read_chunks`, in tcp.stream order."""
    flows: dict[FlowKey, Flow] = {}
    conns: list[Conn] = []
    for chunk in chunks:
        if chunk.pairs is not None:
            analyze_stream(chunk.pairs, None, flows, conns)
        elif chunk.columns is not None:
            analyze_stream(_stream(DullRuns(chunk.columns, flows), flows), None, flows, conns)
    conns.sort(key=lambda c: c.first_i)
    for k, c in enumerate(conns):
        c.index = k
    return conns


def _stream(dr: DullRuns, flows: dict[FlowKey, Flow]) -> Iterator[tuple[int, TcpPacket]]:  # noqa: PLR0915 - one generator, its helpers inside
    """The chunk `dr` classified: segments that are not dull, and runs that fail a check, as
    (position, segment) for the loop; the other runs are applied here, in between, in the same
    order."""
    cols, order, dull = dr.cols, dr.order, dr.dull
    odd = np.flatnonzero(~dull)
    # Each side's last segment of a run too: the flow keeps it (where a keep-alive run counts from).
    lasts = [side.last for side in dr.sides] if dr.sides else []
    wanted = (odd, dr.run_last, dr.run_last_data, dr.keep_new, *lasts)
    rows = np.unique(np.concatenate([np.asarray(x, dtype=np.int64) for x in wanted]))
    rows = rows[rows >= 0]
    pk: dict[int, TcpPacket] = dict(zip(rows.tolist(), cols.packets(order[rows]), strict=True))
    runid, d = dr.runid, dr.d
    keep = dr.keep_new
    keep_by_run: dict[tuple[int, int], list[tuple[int, TcpPacket, int]]] = {}
    for k, rid, side, e, i in zip(
        keep.tolist(),
        runid[keep].tolist(),
        d[keep].tolist(),
        dr.end[keep].tolist(),
        cols.pos[order[keep]].tolist(),
        strict=True,
    ):
        keep_by_run.setdefault((rid, side), []).append((e, pk[k], i))
    tns_sorted = cols.tns[order]
    sides = dr.sides
    per_side = (
        sides[0].values(dr.seq, dr.ack, dr.win, dr.plen, dr.end, tns_sorted) if sides else [],
        sides[1].values(dr.seq, dr.ack, dr.win, dr.plen, dr.end, tns_sorted) if sides else [],
    )
    names = ip4_names
    first_rows = order[dr.starts]
    keys = zip(
        [names[x] for x in cols.src[first_rows].tolist()],
        cols.sport[first_rows].tolist(),
        [names[x] for x in cols.dst[first_rows].tolist()],
        cols.dport[first_rows].tolist(),
        strict=True,
    )
    runs = dict(
        zip(
            dr.starts.tolist(),
            zip(range(dr.n_runs), keys, dr.run_last, dr.run_len, dr.run_last_data, strict=True),
            strict=True,
        )
    )
    get = flows.get

    def apply(start: int) -> bool:  # noqa: PLR0915 - the checks, then the step
        j, key, run_last, run_len, run_last_data = runs[start]
        fwd = get(key)
        if fwd is None:
            return False
        flows = (fwd, fwd.rev) if dr.d[start] == 0 else (fwd.rev, fwd)
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
                    acked_upto[side] = _first_covering(dr, start, run_last, 1 - side, covered)
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
            f.last_p = pk[info[side][-1]]
            f.window = l_win
            if n_data:
                if f.maxseq == f.nextseq:
                    f.maxseq = ld_end
                if ld_end < f.nextseq:  # the run's data went past 2^32
                    f.seq_wraps += 1
                f.nextseq = ld_end
                f.nextseq_t = ld_tns
        for side in (0, 1):
            f = flows[side]
            q = f.unacked
            if replays[side]:
                _replay(dr, f, side, old_acks[1 - side], start, run_last, pk)
                continue
            top = moves[side]
            if top is not None:
                while q and ((top - q[0][0]) & M32) < HALF:
                    q.popleft()
            q.extend(keep_by_run.get((j, side), ()))
            if acked_upto[side] is not None:
                f.acked_upto = acked_upto[side]
        return True

    dull_l = dull.tolist()
    for k in np.flatnonzero(dull ^ True | _at(dr.starts, len(dull))).tolist():
        if not dull_l[k]:
            yield int(cols.pos[order[k]]), pk[k]
        elif not apply(k):
            last = runs[k][2]
            rows_j = np.flatnonzero(dull[k : last + 1]) + k
            yield from zip(cols.pos[order[rows_j]].tolist(), cols.packets(order[rows_j]), strict=True)


# -- the rare walks over a run --------------------------------------------------------------


def _first_covering(dr: DullRuns, first: int, last: int, side: int, target: int) -> int | None:
    """The first ACK of `side` in the run at rows first..last that covers `target`."""
    span = slice(first, last + 1)
    for a, s, dl in zip(dr.ack[span].tolist(), dr.d[span].tolist(), dr.dull[span].tolist(), strict=True):
        if dl and s == side and ((a - target) & M32) < HALF:
            return int(a)
    return None


def _replay(
    dr: DullRuns, f: Flow, side: int, prev_ack: int, first: int, last: int, pk: dict[int, TcpPacket]
) -> None:
    """The loop's own bookkeeping of `f.unacked` over the run, for a queue that may be out of
    sequence order: segments appended as sent, dropped as the peer's ACKs move."""
    q = f.unacked
    span = slice(first, last + 1)
    cols = dr.cols
    rows = range(first, last + 1)
    sent: dict[int, int] = {}  # position -> row, of this run's segments in the queue
    for k, dl, s, a, e, pl, i in zip(
        rows,
        dr.dull[span].tolist(),
        dr.d[span].tolist(),
        dr.ack[span].tolist(),
        dr.end[span].tolist(),
        dr.plen[span].tolist(),
        cols.pos[dr.order[span]].tolist(),
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
                q.popleft()
        prev_ack = a
    for n, (e, p, i) in enumerate(q):  # segments of the run still queued need their packet
        if p is None:
            q[n] = (e, cols.packets(dr.order[[sent[i]]])[0], i)


def _at(rows: I64, n: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros(n, dtype=np.bool_)
    mask[rows] = True
    return mask


def summarize_chunks(chunks: Iterable[Chunk]) -> list[ConnectionSummary]:
    """`analyze_chunks`, then each connection's summary (the collector paused meanwhile)."""
    return summarize_pass(lambda: analyze_chunks(chunks))
