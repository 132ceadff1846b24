"""The reference loop over arrays: the same decisions as `loop.analyze_stream`, for a chunk of
segments at once, with every connection's state in numpy arrays, so that numba can compile it
(`compiled`). Plain Python otherwise (then slow: the tests run it so on small captures).

What it keeps is only the state that decides the segments' flags and what a connection's
summary needs at the end: each direction's sequence state (Wireshark's), its queue of
unacknowledged segments, the handshake and FIN state that the ACKs are watched for. It also
keeps the retransmissions' facts, the commonest by far on a lossy link: each direction's count
and first frames, and each retransmitted segment's run (`flows.Run`: its sends, the original's
frame, how it started), so that a retransmission costs no Python. The other evidence (SYN, FIN,
RST, keep-alive timing, zero windows) stays with the Python objects: the loop writes one
*event* per segment that leaves such a fact (or starts a connection), with the state that fact
reads at that moment, and `fastpass` replays the events through `segments`' own code. The order
of the steps is the loop's, step for step; `tests/unit/tcp/test_fastpass.py` compares the two.

Sequence numbers are int64 holding 32-bit values, as in the loop (`& M32` where it masks).

Over 400 lines because it is one function, the loop, to be read step for step beside `loop`
and `segments` (cut into pieces it would be harder to check against them); the state's layout
is its header.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "NC",
    "NE",
    "NF",
    "NQ",
    "NR",
    "analyze_rows",
    "rehash",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

M32 = 0xFFFFFFFF
HALF = 0x80000000
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
KA, KA_ACK, ZWP, ZWP_ACK, ZW = 0x1, 0x2, 0x4, 0x8, 0x10
RETX, FAST, SPUR, OOO, DUPACK = 0x20, 0x40, 0x80, 0x100, 0x200
ANY_RETX = RETX | FAST | SPUR
OOO_DEFAULT_NS = 3_000_000
FAST_WINDOW_NS = 20_000_000
QUICK_NS = 1_000_000  # flows.QUICK_NS

# Per direction (a row of `flows`; connection k has rows 2k, its first sender, and 2k + 1).
(NEXTSEQ, NEXTSEQ_T, MAXSEQ, LASTACK, LASTACK_T, WINDOW, DUPACKS, LASTFLAGS, BASE_SET, BASE_SEQ,
 FRESH, ACKED_UPTO, HAS_ACKED, HAS_SYN, HAS_SYNACK, SYNACK_SEQ, HAS_FIN, FIN_END, FIN_EARLY,
 Q_HEAD, Q_TAIL, Q_LEN, RUN_GEN, RUN_N, RUN_HEAD, LAST_F, RETX_N, RX_HEAD, RX_TAIL,
 QUICK_N, SEQ_WRAPS) = range(31)  # fmt: skip
# LAST_F: the frame of the direction's latest segment (at LASTACK_T; its time in `ctimes`).
# RETX_N: its retransmissions; RX_HEAD, RX_TAIL: the first MAX_EVIDENCE of them (rows of `xrows`).
# QUICK_N: those within QUICK_NS of their segment's previous send (`flows.Flow.quick`).
# SEQ_WRAPS: how often NEXTSEQ passed 2^32 (`flows.Flow.seq_wraps`).
NF = 31
# Per connection (a row of `conns`); times as float seconds in `ctimes` (LAST_TIME, LA_TIME, and
# each direction's latest segment's: F_TIME + (row & 1)).
(MRU_SYN, FIRST_RTT, RTT_WAIT, HS_PENDING, HS_DONE, PACKETS, LAST_FRAME, LAST_TNS, LA_FRAME, LA_TNS,
 BEST) = range(11)  # fmt: skip
NC = 11
LAST_TIME, LA_TIME, F_TIME = 0, 1, 2
NT = 4
# An unacknowledged segment (a row of `queue`, linked per direction; its time in `qtimes`).
Q_END, Q_SEQ, Q_POS, Q_FRAME, Q_TNS, Q_NEXT = range(6)
NQ = 6
# A run of retransmissions of one segment (a row of `runs`, linked per direction from RUN_HEAD),
# found through `table` (open addressing on direction, generation, seq; -1 empty). A generation
# is what a direction's runs were until they were cleared (MAX_RUNS of them): the cleared rows
# are freed (generation -1) for new runs, so that memory stays bounded as the loop's does.
# A run is also the evidence of `flows.Run`: its end, whether new data went out after its
# original send and before its first retransmission (R_FRESH) and the peer had acknowledged it
# (R_ACKED), its original send's frame and time (R_OFRAME -1: not captured), its latest
# retransmission (frame, time, position, flags) and its sends (the original, then each
# retransmission, MAX_EVIDENCE + 1 at most: rows of `xrows`). Times as float seconds in `rtimes`
# (the original's, the latest's).
(R_FLOW, R_GEN, R_SEQ, R_COUNT, R_ORIG, R_NEXT, R_END, R_FRESH, R_ACKED, R_OFRAME, R_OTNS, R_LFRAME,
 R_LTNS, R_LPOS, R_LFLAGS, R_SHEAD, R_STAIL, R_SN) = range(18)  # fmt: skip
NR = 18
RT_ORIG, RT_LAST = 0, 1
# A frame kept as evidence (a row of `xrows`, linked; its time in `xtimes`): a run's sends, a
# direction's retransmissions. A freed run's rows are chained from FREE_X for reuse.
X_FRAME, X_TNS, X_NEXT = range(3)
NX = 3
# Rows of `xrows` one segment may take: a retransmission that starts a run keeps its original
# send and itself as the run's sends, and itself among its direction's retransmissions.
KEPT_PER_SEGMENT = 3
# Counters (`counts`): N_RUNS is the rows of `runs` ever used, FREE_RUN the first freed one;
# N_X the rows of `xrows` ever used.
N_CONNS, FREE_HEAD, FREE_N, N_RUNS, N_EVENTS, TABLE_USED, FREE_RUN, N_X, FREE_X = range(9)
NCOUNTS = 9
# An event (a row of `events`; in `etimes` the reverse direction's latest segment's time: where
# a keep-alive run counts from). Retransmissions need none: their facts stay in the arrays.
(E_ROW, E_FLOW, E_TA, E_NEW, E_FWD_LF, E_FWD_LAT, E_REV_LF, E_REV_LAT, E_REV_WIN, E_REV_LA,
 E_REV_F) = range(11)  # fmt: skip
NE = 11
# What an event is written for (besides a new connection, SYN, FIN, RST).
EVENT_FACTS = ZW | KA | KA_ACK


def _covers(ack: int, end: int) -> bool:
    return ((ack - end) & M32) < HALF


def _slot(table: I64, runs: I64, flow: int, gen: int, seq: int) -> int:
    """The table slot of (flow, gen, seq): its run's, or the empty one where it would go."""
    mask = len(table) - 1
    h = (((seq * 0x7FEB352D) >> 11) ^ (flow * 0x9E3779B) ^ (gen * 0x85EBCA7)) & mask  # no overflow
    while True:
        r = table[h]
        if r < 0 or (runs[r, R_SEQ] == seq and runs[r, R_FLOW] == flow and runs[r, R_GEN] == gen):
            return h
        h = (h + 1) & mask


def rehash(table: I64, runs: I64, flows: I64, n_runs: int) -> int:
    """Fill an empty `table` with the runs of each direction's current generation; returns how
    many slots are used."""
    used = 0
    for r in range(n_runs):
        f = runs[r, R_FLOW]
        if runs[r, R_GEN] == flows[f, RUN_GEN]:
            table[_slot(table, runs, f, runs[r, R_GEN], runs[r, R_SEQ])] = r
            used += 1
    return used


def _keep(xrows: I64, xtimes: F64, counts: I64, frame: int, tns: int, time: float) -> int:
    """A new row of `xrows` (a freed one if any) holding a frame; returns it."""
    x = counts[FREE_X]
    if x >= 0:
        counts[FREE_X] = xrows[x, X_NEXT]
    else:
        x = counts[N_X]
        counts[N_X] = x + 1
    xrows[x, X_FRAME] = frame
    xrows[x, X_TNS] = tns
    xrows[x, X_NEXT] = -1
    xtimes[x] = time
    return int(x)


def _link(rows: I64, next_col: int, owners: I64, o: int, head: int, tail: int, x: int) -> None:
    """Row `x` of `rows` put at the end of owner `o`'s list (`owners[o, head]` to
    `owners[o, tail]`, chained through `next_col`): a queue, a run's sends, a direction's
    retransmissions."""
    last = owners[o, tail]
    if last >= 0:
        rows[last, next_col] = x
    else:
        owners[o, head] = x
    owners[o, tail] = x


def _send(runs: I64, xrows: I64, xtimes: F64, counts: I64, r: int, frame: int, tns: int, time: float) -> None:
    """One more send of run `r` (`flows.Run.sends`)."""
    _link(xrows, X_NEXT, runs, r, R_SHEAD, R_STAIL, _keep(xrows, xtimes, counts, frame, tns, time))
    runs[r, R_SN] += 1


def _watching(flows: I64, conns: I64, f: int) -> bool:
    """The loop's `Flow.watch`: its ACKs may complete the handshake, the initial RTT or a FIN close."""
    c = f >> 1
    if conns[c, RTT_WAIT] != 0 or conns[c, HS_PENDING] == f:
        return True
    return bool(flows[f ^ 1, HAS_FIN] != 0 and flows[f, HAS_FIN] == 0 and flows[f, FIN_EARLY] == 0)


def analyze_rows(  # noqa: PLR0915 - the loop, step for step
    n: int,
    dkey: I64,
    seqs: I64,
    acks: I64,
    flagss: I64,
    windows: I64,
    plens: I64,
    tnss: I64,
    poss: I64,
    frames: I64,
    times: F64,
    flow_of: I64,
    same: I64,
    flows: I64,
    conns: I64,
    ctimes: F64,
    queue: I64,
    qtimes: F64,
    runs: I64,
    rtimes: F64,
    table: I64,
    xrows: I64,
    xtimes: F64,
    counts: I64,
    events: I64,
    etimes: F64,
    max_unacked: int,
    max_unacked_retx: int,
    max_runs: int,
    max_evidence: int,
) -> None:
    """Analyse rows 0..n-1 (in stream order). `dkey`: each segment's direction key (its reverse
    is `dkey ^ 1`); `flow_of`: a direction key's current direction row (-1: none yet); `same`:
    1 for a key whose 4-tuple is its own reverse (the loop's dictionary then holds the second
    direction for it). The
    caller makes room first: n more connections, runs, free queue entries and events,
    KEPT_PER_SEGMENT * n more rows of `xrows`, and a table at most half full after n more."""
    for j in range(n):
        dk = dkey[j]
        seq = seqs[j]
        ack = acks[j]
        flags = flagss[j]
        window = windows[j]
        seglen = plens[j]
        tns = tnss[j]
        fwd = flow_of[dk]
        new = False
        # start_connection
        if fwd < 0 or flags & SYN:
            fresh_conn = True
            if fwd >= 0:
                if flags & (SYN | ACK) != SYN or not flows[fwd, BASE_SET]:
                    fresh_conn = False
                elif seq == flows[fwd, BASE_SEQ]:
                    old, back = flows[fwd, NEXTSEQ], flows[fwd, MAXSEQ]  # the same SYN again
                    if old and back < old and ((back - old) & M32) < HALF:
                        flows[fwd, SEQ_WRAPS] += 1  # flows.crossed
                    elif old and back > old and ((old - back) & M32) < HALF:
                        flows[fwd, SEQ_WRAPS] -= 1
                    flows[fwd, NEXTSEQ] = back
                    fresh_conn = False
            if fresh_conn:
                c = counts[N_CONNS]
                counts[N_CONNS] = c + 1
                conns[c, :] = 0
                conns[c, HS_PENDING] = -1
                conns[c, LA_FRAME] = -1
                conns[c, BEST] = -1
                for g in (2 * c, 2 * c + 1):
                    flows[g, :] = 0
                    flows[g, FRESH] = 1
                    flows[g, WINDOW] = -1
                    flows[g, Q_HEAD] = -1
                    flows[g, Q_TAIL] = -1
                    flows[g, RUN_HEAD] = -1
                    flows[g, RX_HEAD] = -1
                    flows[g, RX_TAIL] = -1
                fwd = 2 * c
                flow_of[dk] = fwd
                flow_of[dk ^ 1] = fwd + 1
                if same[dk]:
                    flow_of[dk] = fwd + 1
                new = True
        rev = fwd ^ 1
        c = fwd >> 1
        conns[c, PACKETS] += 1
        conns[c, LAST_FRAME] = frames[j]
        conns[c, LAST_TNS] = tns
        ctimes[c, LAST_TIME] = times[j]
        # The state the facts read, as the segment finds it.
        fwd_lf = flows[fwd, LASTFLAGS]
        fwd_lat = flows[fwd, LASTACK_T]
        if flows[fwd, FRESH]:  # set_bases
            if not flows[fwd, BASE_SET]:
                flows[fwd, BASE_SEQ] = seq if flags & SYN else (seq - 1) & M32
                flows[fwd, BASE_SET] = 1
            if flags & ACK and not flows[rev, BASE_SET]:
                flows[rev, BASE_SEQ] = (ack - 1) & M32
                flows[rev, BASE_SET] = 1
            flows[fwd, FRESH] = 0 if flows[rev, BASE_SET] else 1

        # Wireshark's tcp_analyze_sequence_number.
        nextseq = flows[fwd, NEXTSEQ]
        lastack = flows[fwd, LASTACK]
        if seglen == 1 and seq == nextseq and flows[rev, WINDOW] == 0:
            ta = ZWP
        elif flags & (SYN | FIN | RST) or (window and seglen > 1):
            ta = 0
        else:
            ta = 0 if window else ZW
            if seglen <= 1 and seq == (nextseq - 1) & M32:
                ta |= KA
            if seglen == 0 and seq == nextseq and ack == lastack:
                if window:
                    if window == flows[fwd, WINDOW]:
                        if flows[rev, LASTFLAGS] & KA:
                            ta |= KA_ACK
                        else:
                            d = flows[fwd, DUPACKS]
                            flows[fwd, DUPACKS] = 1 if d == -1 else d + 1
                            ta |= DUPACK
                elif flows[fwd, WINDOW] == 0 and flows[rev, LASTFLAGS] & ZWP:
                    ta |= ZWP_ACK
        if ack != lastack:
            flows[fwd, DUPACKS] = 0
        if flags & ACK:  # "ACKed unseen segment", as tshark 4.0 (see the loop)
            mark_seq = flows[rev, MAXSEQ]
            if mark_seq and 0 < ((ack - mark_seq) & M32) < HALF:
                if ((mark_seq - flows[rev, NEXTSEQ]) & M32) >= HALF:
                    flows[rev, MAXSEQ] = flows[rev, NEXTSEQ]
                else:
                    flows[rev, DUPACKS] = -1
        ctl = 1 if flags & (SYN | FIN) else 0
        if seglen or ctl:
            if not ta & KA:
                rla = flows[rev, LASTACK]
                over = (seq + seglen - rla) & M32
                if seglen and rla and (over == 0 or over >= HALF):
                    ta |= SPUR
                elif (
                    nextseq
                    and ((seq - nextseq) & M32) >= HALF
                    and not (seglen > 1 and (nextseq - 1) & M32 == seq)
                ):
                    # classify_behind
                    dt = tns - flows[rev, LASTACK_T]
                    rd = flows[rev, DUPACKS]
                    if (rd >= 2 or rd == -1) and rla == seq and 0 <= dt < FAST_WINDOW_NS:
                        ta |= FAST
                    else:
                        dt = tns - flows[fwd, NEXTSEQ_T]
                        threshold = conns[c, FIRST_RTT]
                        if threshold == 0:
                            threshold = OOO_DEFAULT_NS
                        if 0 <= dt < threshold and nextseq != (seq + seglen + ctl) & M32:
                            ta |= OOO
                        else:
                            ta |= RETX
            end = (seq + seglen + ctl) & M32
        else:
            end = seq
        if (nextseq == 0 or 0 < ((end - nextseq) & M32) < HALF) and not ta & ZWP:
            if end < nextseq:  # forward, past 2^32
                flows[fwd, SEQ_WRAPS] += 1
            flows[fwd, NEXTSEQ] = nextseq = end
            flows[fwd, NEXTSEQ_T] = tns
        mark_seq = flows[fwd, MAXSEQ]
        if (seq == mark_seq or not mark_seq) and not ta & ZWP:
            flows[fwd, MAXSEQ] = nextseq

        # A retransmission's facts: its run (found or started: the stand-ins and the evidence).
        o_frame, o_tns, o_time, fresh, acked_before = -1, 0, 0.0, 0, 0
        if ta & ANY_RETX:
            gen = flows[fwd, RUN_GEN]
            h = _slot(table, runs, fwd, gen, seq)
            r = table[h]
            if r < 0:
                if flows[fwd, RUN_N] >= max_runs:  # cleared, the connection's best run kept
                    gen += 1
                    flows[fwd, RUN_GEN] = gen
                    flows[fwd, RUN_N] = 0
                    best = conns[c, BEST]
                    keep = best >= 0 and runs[best, R_FLOW] == fwd
                    e = flows[fwd, RUN_HEAD]
                    while e >= 0:  # free the others' rows
                        nxt = runs[e, R_NEXT]
                        if not (keep and e == best):
                            runs[e, R_GEN] = -1
                            runs[e, R_NEXT] = counts[FREE_RUN]
                            counts[FREE_RUN] = e
                            x = runs[e, R_SHEAD]  # its sends too
                            while x >= 0:
                                nx = xrows[x, X_NEXT]
                                xrows[x, X_NEXT] = counts[FREE_X]
                                counts[FREE_X] = x
                                x = nx
                        e = nxt
                    flows[fwd, RUN_HEAD] = -1
                    if keep:
                        runs[best, R_GEN] = gen
                        runs[best, R_NEXT] = -1
                        flows[fwd, RUN_HEAD] = best
                        table[_slot(table, runs, fwd, gen, runs[best, R_SEQ])] = best
                        counts[TABLE_USED] += 1
                        flows[fwd, RUN_N] = 1
                    h = _slot(table, runs, fwd, gen, seq)
                e = flows[fwd, Q_HEAD]
                while e >= 0:
                    if queue[e, Q_SEQ] == seq:
                        o_frame, o_tns, o_time = queue[e, Q_FRAME], queue[e, Q_TNS], qtimes[e]
                        break
                    e = queue[e, Q_NEXT]
                if o_frame < 0 and flows[fwd, Q_LEN] < max_unacked_retx:
                    _append(flows, queue, qtimes, counts, fwd, end, seq, poss[j], frames[j], tns, times[j])
                fresh = 1 if o_frame >= 0 and flows[fwd, NEXTSEQ_T] > o_tns else 0
                acked_before = 1 if flows[fwd, HAS_ACKED] and _covers(flows[fwd, ACKED_UPTO], end) else 0
                r = counts[FREE_RUN]
                if r >= 0:
                    counts[FREE_RUN] = runs[r, R_NEXT]
                else:
                    r = counts[N_RUNS]
                    counts[N_RUNS] = r + 1
                runs[r, R_NEXT] = flows[fwd, RUN_HEAD]
                flows[fwd, RUN_HEAD] = r
                runs[r, R_FLOW] = fwd
                runs[r, R_GEN] = gen
                runs[r, R_SEQ] = seq
                runs[r, R_COUNT] = 0
                runs[r, R_ORIG] = 1 if o_frame >= 0 else 0
                runs[r, R_END] = end
                runs[r, R_FRESH] = fresh
                runs[r, R_ACKED] = acked_before
                runs[r, R_OFRAME] = o_frame
                runs[r, R_OTNS] = o_tns
                rtimes[r, RT_ORIG] = o_time
                runs[r, R_SHEAD] = -1
                runs[r, R_STAIL] = -1
                runs[r, R_SN] = 0
                if o_frame >= 0:
                    _send(runs, xrows, xtimes, counts, r, o_frame, o_tns, o_time)
                table[h] = r
                counts[TABLE_USED] += 1
                flows[fwd, RUN_N] += 1
            # The segment's previous send: its latest retransmission, else its original.
            prev = runs[r, R_LTNS] if runs[r, R_COUNT] else (runs[r, R_OTNS] if runs[r, R_ORIG] else -1)
            if prev >= 0 and abs(tns - prev) < QUICK_NS:
                flows[fwd, QUICK_N] += 1
            # Run.add, and the direction's count and evidence.
            runs[r, R_COUNT] += 1
            runs[r, R_LFRAME] = frames[j]
            runs[r, R_LTNS] = tns
            runs[r, R_LPOS] = poss[j]
            runs[r, R_LFLAGS] = flags
            rtimes[r, RT_LAST] = times[j]
            if runs[r, R_SN] <= max_evidence:
                _send(runs, xrows, xtimes, counts, r, frames[j], tns, times[j])
            flows[fwd, RETX_N] += 1
            if flows[fwd, RETX_N] <= max_evidence:
                x = _keep(xrows, xtimes, counts, frames[j], tns, times[j])
                _link(xrows, X_NEXT, flows, fwd, RX_HEAD, RX_TAIL, x)
            best = conns[c, BEST]
            if (
                best < 0
                or runs[r, R_COUNT] > runs[best, R_COUNT]
                or (runs[r, R_COUNT] == runs[best, R_COUNT] and (runs[r, R_ORIG] or not runs[best, R_ORIG]))
            ):
                conns[c, BEST] = r
        if new or flags & (SYN | FIN | RST) or ta & EVENT_FACTS:
            k = counts[N_EVENTS]
            counts[N_EVENTS] = k + 1
            events[k, E_ROW] = j
            events[k, E_FLOW] = fwd
            events[k, E_TA] = ta
            events[k, E_NEW] = 1 if new else 0
            events[k, E_FWD_LF] = fwd_lf
            events[k, E_FWD_LAT] = fwd_lat
            events[k, E_REV_LF] = flows[rev, LASTFLAGS]
            events[k, E_REV_LAT] = flows[rev, LASTACK_T]
            events[k, E_REV_WIN] = flows[rev, WINDOW]
            events[k, E_REV_LA] = flows[rev, LASTACK]
            events[k, E_REV_F] = flows[rev, LAST_F]
            etimes[k] = ctimes[c, F_TIME + (rev & 1)]
        if (seglen or ctl) and not ta & KA:
            conns[c, LA_FRAME] = frames[j]
            conns[c, LA_TNS] = tns
            ctimes[c, LA_TIME] = times[j]
            if not ta & ANY_RETX and flows[fwd, Q_LEN] < max_unacked:
                _append(flows, queue, qtimes, counts, fwd, end, seq, poss[j], frames[j], tns, times[j])
        if flags & ACK and ack != lastack:  # forget_acked
            e = flows[rev, Q_HEAD]
            if e >= 0 and ((ack - queue[e, Q_END]) & M32) < HALF:
                flows[rev, ACKED_UPTO] = ack
                flows[rev, HAS_ACKED] = 1
                while e >= 0 and ((ack - queue[e, Q_END]) & M32) < HALF:
                    nxt = queue[e, Q_NEXT]
                    queue[e, Q_NEXT] = counts[FREE_HEAD]
                    counts[FREE_HEAD] = e
                    counts[FREE_N] += 1
                    flows[rev, Q_LEN] -= 1
                    e = nxt
                flows[rev, Q_HEAD] = e
                if e < 0:
                    flows[rev, Q_TAIL] = -1
        watch = False
        if flags & (SYN | FIN | RST):  # record_control's state
            if flags & SYN:
                if flags & ACK:
                    if not flows[fwd, HAS_SYNACK]:
                        flows[fwd, HAS_SYNACK] = 1
                        flows[fwd, SYNACK_SEQ] = seq
                        if flows[rev, HAS_SYN] and not conns[c, HS_DONE]:
                            conns[c, HS_PENDING] = rev
                else:
                    flows[fwd, HAS_SYN] = 1
                    if tns:
                        conns[c, MRU_SYN] = tns
                        conns[c, RTT_WAIT] = 0 if conns[c, FIRST_RTT] else 1
            if flags & FIN and not flows[fwd, HAS_FIN]:
                flows[fwd, HAS_FIN] = 1
                flows[fwd, FIN_END] = (seq + seglen + 1) & M32
            watch = True
        elif _watching(flows, conns, fwd):
            watch = True
        if watch and flags & ACK and not flags & SYN:  # watch_acks
            if conns[c, RTT_WAIT]:
                conns[c, FIRST_RTT] = tns - conns[c, MRU_SYN]
                conns[c, RTT_WAIT] = 1 if conns[c, FIRST_RTT] == 0 else 0
            if (
                conns[c, HS_PENDING] == fwd
                and not flags & RST
                and flows[rev, HAS_SYNACK]
                and _covers(ack, flows[rev, SYNACK_SEQ] + 1)
            ):
                conns[c, HS_PENDING] = -1
                conns[c, HS_DONE] = 1
            if (
                flows[rev, HAS_FIN]
                and not flows[fwd, HAS_FIN]
                and not flags & FIN
                and _covers(ack, flows[rev, FIN_END])
            ):
                flows[fwd, FIN_EARLY] = 1
        flows[fwd, WINDOW] = window
        flows[fwd, LASTACK] = ack
        flows[fwd, LASTACK_T] = tns
        flows[fwd, LAST_F] = frames[j]
        ctimes[c, F_TIME + (fwd & 1)] = times[j]
        flows[fwd, LASTFLAGS] = ta


def _append(
    flows: I64,
    queue: I64,
    qtimes: F64,
    counts: I64,
    f: int,
    end: int,
    seq: int,
    pos: int,
    frame: int,
    tns: int,
    time: float,
) -> None:
    """Queue an unacknowledged segment of direction `f`, from the free entries."""
    e = counts[FREE_HEAD]
    counts[FREE_HEAD] = queue[e, Q_NEXT]
    counts[FREE_N] -= 1
    queue[e, Q_END] = end
    queue[e, Q_SEQ] = seq
    queue[e, Q_POS] = pos
    queue[e, Q_FRAME] = frame
    queue[e, Q_TNS] = tns
    queue[e, Q_NEXT] = -1
    qtimes[e] = time
    _link(queue, Q_NEXT, flows, f, Q_HEAD, Q_TAIL, e)
    flows[f, Q_LEN] += 1
