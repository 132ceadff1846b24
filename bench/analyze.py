"""Benchmark: `tcpscen analyze` against `tshark -q -z conv,tcp` on the same big capture, in one run.

    .venv/bin/python bench/analyze.py [--packets 1000000] [--keep DIR] [--no-tshark] [--against DIR]

It writes classic pcaps (Ethernet, IPv4, snaplen 96) the way a busy server sees its traffic:
handshakes, requests and responses, delayed and duplicate ACKs, lost segments retransmitted
with RTO backoff or fast-retransmitted, idle connections probed by keep-alives (answered), zero
windows, then FIN closes (3 and 4 packets), RSTs, RTO aborts (retransmissions, then silence) and
keep-alive aborts (probes, then the kernel's RST). Three captures:

* ``many``: PACKETS packets; a new connection every 2 ms, so about 1,500 are open at once and
  about 10,000 in all: the shape the speed target is for;
* ``many-small``: the first fifth of it (fewer connections): memory grows with connections;
* ``long``: PACKETS packets in 8 long interleaved connections: memory does not grow with packets.

For each it runs the whole `tcpscen analyze --json` command as a separate process (start-up
and JSON output included), as it runs by default (one process per CPU, at most 4, for a big
capture) and with ``-j 1``, and prints the median of three runs in packets per second, and the
peak RSS of all its processes together; for ``many`` also the readable summary, the same
without numba (``TCPSCEN_NO_JIT=1``: what the ``fast`` extra buys), the engine alone in this
process (reading and analysis in one process, no start-up or output), the same packets as
pcapng (if tshark's editcap is there), and tshark's TCP conversation table on the same file,
with the ratio (also on the pcapng and the 8-connection capture). First a small capture (400
packets), where start-up is everything, beside Python's own start. ``--against DIR`` times the
same commands run from another checkout (`python -m orchestrator` takes the one it runs in), in
the same run and in turns with this one's (the default and `-j 1`): a figure against the code
before a change, on the same machine at the same moment (this machine's speed varies by a
factor of three from one hour to the next). Each
checkout's modules are byte-compiled first, as an install leaves them: with
PYTHONDONTWRITEBYTECODE set, an editable checkout would compile its sources at every start.
"""

from __future__ import annotations

import argparse
import compileall
import gc
import heapq
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the project's modules come from this checkout
    sys.path.insert(0, str(ROOT))

from orchestrator.pcap import pcap  # noqa: E402 - after the path
from orchestrator.pcap.reader import read_tcp  # noqa: E402
from orchestrator.tcp.sizing import auto_processes  # noqa: E402

T0 = 1_700_000_000.0
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF
SNAPLEN = 96
# The whole command, as a user runs it (`python -m orchestrator` takes the checkout it runs in).
TCPSCEN = [sys.executable, "-m", "orchestrator", "analyze", "--json"]

# One segment to write: (time, client->server?, flags, seq, ack, window, payload length).
Seg = tuple[float, bool, int, int, int, int, int]

SHAPES = {  # exchanges per connection (low, high), seconds between connection starts, most connections
    "many": ((10, 80), 0.002, 1 << 30),
    "long": ((50_000, 50_000), 0.002, 8),
}


def connection(rng: random.Random, t: float, exchanges: tuple[int, int]) -> Iterator[Seg]:  # noqa: PLR0915 - one script, read top-down
    """One connection's segments, in time order, the way Linux peers behave."""
    rtt = rng.uniform(0.0002, 0.003)
    half = rtt / 2
    cs, ss = rng.getrandbits(32), rng.getrandbits(32)  # next seq of the client, of the server
    cw, sw = 64240, 65160
    yield (t, True, SYN, cs, 0, cw, 0)
    cs = (cs + 1) & M32
    t += half
    yield (t, False, SYN | ACK, ss, cs, sw, 0)
    ss = (ss + 1) & M32
    t += half
    yield (t, True, ACK, cs, ss, cw, 0)
    for _ in range(rng.randint(*exchanges)):
        t += rng.expovariate(1 / 0.02)
        n = rng.choice((64, 200, 517, 1448))
        yield (t, True, PSH | ACK, cs, ss, cw, n)
        first = cs
        cs = (cs + n) & M32
        r = rng.random()
        if r < 0.05:  # the request is lost: RTO retransmissions, doubling, then the ACK
            rto = 0.2 + rtt
            for _ in range(rng.randint(1, 4)):
                t += rto
                yield (t, True, PSH | ACK, first, ss, cw, n)
                rto *= 2
        elif r < 0.08:  # a response segment lost: duplicate ACKs, then a fast retransmission
            m = 1448
            lost = ss  # its first send is not captured
            ss = (ss + m) & M32
            t += half
            for _ in range(3):
                t += 0.0001
                yield (t, False, PSH | ACK, ss, cs, sw, m)
                ss = (ss + m) & M32
            t += half
            for _ in range(3):
                t += 0.0001
                yield (t, True, ACK, cs, lost, cw, 0)
            t += half
            yield (t, False, PSH | ACK, lost, cs, sw, m)
        elif r < 0.09:  # the receiver stalls: zero window, then a window update
            t += half
            yield (t, False, ACK, ss, cs, 0, 0)
            t += rng.uniform(0.05, 0.3)
            yield (t, False, ACK, ss, cs, sw, 0)
            continue
        t += half
        m = rng.choice((0, 0, 100, 1448, 1448))
        yield (t, False, PSH | ACK if m else ACK, ss, cs, sw, m)
        ss = (ss + m) & M32
        if m and rng.random() < 0.7:
            t += 0.04  # delayed ACK
            yield (t, True, ACK, cs, ss, cw, 0)
        if rng.random() < 0.01:  # idle: keep-alive probes, answered
            t += 2.0
            for _ in range(rng.randint(1, 4)):
                yield (t, True, ACK, (cs - 1) & M32, ss, cw, 0)
                yield (t + half, False, ACK, ss, cs, sw, 0)
                t += 1.0
    end = rng.random()
    t += rng.uniform(0.001, 0.05)
    if end < 0.6:  # 3-packet close
        yield (t, True, FIN | ACK, cs, ss, cw, 0)
        yield (t + half, False, FIN | ACK, ss, (cs + 1) & M32, sw, 0)
        yield (t + rtt, True, ACK, (cs + 1) & M32, (ss + 1) & M32, cw, 0)
    elif end < 0.8:  # 4-packet close, started by the server
        yield (t, False, FIN | ACK, ss, cs, sw, 0)
        yield (t + half, True, ACK, cs, (ss + 1) & M32, cw, 0)
        yield (t + half + 0.01, True, FIN | ACK, cs, (ss + 1) & M32, cw, 0)
        yield (t + rtt + 0.01, False, ACK, (ss + 1) & M32, (cs + 1) & M32, sw, 0)
    elif end < 0.9:
        yield (t, rng.random() < 0.5, RST | ACK, cs, ss, 0, 0)
    elif end < 0.95:  # the peer vanished: retransmissions with backoff, then silence
        yield (t, True, PSH | ACK, cs, ss, cw, 100)
        rto = 0.2
        for _ in range(5):
            t += rto
            yield (t, True, PSH | ACK, cs, ss, cw, 100)
            rto *= 2
    else:  # idle, keep-alive on, the peer gone: probes, then the kernel's RST
        t += 2.0
        for _ in range(3):
            yield (t, True, ACK, (cs - 1) & M32, ss, cw, 0)
            t += 1.0
        yield (t, True, RST | ACK, cs, ss, cw, 0)


_FRAME = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH")
_MACS = (b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\x01")


def write_capture(path: Path, packets: int, shape: str, seed: int = 7) -> tuple[int, int]:
    """Write `packets` frames of `shape`. Returns (frames written, connections started)."""
    exchanges, every, most = SHAPES[shape]
    rng = random.Random(seed)
    heap: list[tuple[float, int, Seg, Iterator[Seg], tuple[bytes, bytes, int, int]]] = []
    started = 0
    next_start = T0
    filler = b"x" * 1500
    written = 0
    with open(path, "wb", buffering=1 << 22) as f:
        w = pcap.Writer(f, 1, SNAPLEN)  # Ethernet
        while written < packets:
            while started < most and (not heap or next_start <= heap[0][0]):  # they start as time goes on
                k = started
                client = socket.inet_aton(f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255 or 1}")
                ends = (client, socket.inet_aton("192.0.2.80"), 20000 + k % 40000, 443)
                segs = connection(rng, next_start, exchanges)
                first = next(segs)
                heapq.heappush(heap, (first[0], k, first, segs, ends))
                started += 1
                next_start += every
            if not heap:
                break
            t, k, seg, segs, ends = heap[0]
            nxt = next(segs, None)
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt[0], k, nxt, segs, ends))
            _, c2s, flags, seq, ack, win, n = seg
            client, server, cport, sport = ends
            src, dst, sp, dp = (client, server, cport, sport) if c2s else (server, client, sport, cport)
            ip_tcp = (
                0x45,
                0,
                40 + n,
                0,
                0x4000,
                64,
                6,
                0,
                src,
                dst,
                sp,
                dp,
                seq,
                ack,
                0x50,
                flags,
                win,
                0,
                0,
            )
            frame = _FRAME.pack(*_MACS, 0x0800, *ip_tcp) + filler[:n]
            sec = int(t)
            w.write(sec, int((t - sec) * 1e6), frame[:SNAPLEN], len(frame))
            written += 1
    return written, started


def timed(
    cmd: list[str], runs: int = 3, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> tuple[float, int, bytes]:
    """Median wall time of `runs` runs of a command, the peak RSS (KiB) of the process and its
    children together (the analysis may fork; sampled every 5 ms in one more run, so that the
    sampling does not slow the timed ones), and its stdout. `env`: variables to add; `cwd`: where
    it runs (`python -m orchestrator` takes the checkout there)."""
    times = []
    for _ in range(runs):
        took, _rss, out = _run(cmd, None, env, cwd)
        times.append(took)
    peak = [0]
    _run(cmd, peak, env, cwd)
    return statistics.median(times), peak[0], out


def _run(
    cmd: list[str], peak: list[int] | None, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> tuple[float, int, bytes]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd, env={**os.environ, **(env or {})})
        sampler = None
        if peak is not None:
            sampler = threading.Thread(target=_sample_rss, args=(proc.pid, peak), daemon=True)
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
        if sampler is not None and peak is not None:
            sampler.join()
            peak[0] = max(peak[0], usage.ru_maxrss)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.read().decode(errors='replace')}")
        out.seek(0)
        return took, usage.ru_maxrss, out.read()


def _sample_rss(pid: int, peak: list[int]) -> None:
    """The largest sum of VmRSS over `pid` and its descendants, until `pid` is gone."""
    while True:
        family = _family(pid)
        if not family:
            return
        total = 0
        for p in family:
            try:
                status = Path(f"/proc/{p}/status").read_text()
            except OSError:
                continue
            for row in status.splitlines():
                if row.startswith("VmRSS:"):
                    total += int(row.split()[1])
        peak[0] = max(peak[0], total)
        time.sleep(0.005)


def _family(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out.append(p)
        todo.extend(int(k) for k in kids)
    return out


def engine_alone(path: Path) -> float:
    """Seconds for reading and analysing `path` in this process: the engine without start-up."""
    from orchestrator.tcp.analysis import analyze_file  # noqa: PLC0415 - only for this measure

    start = time.perf_counter()
    analyze_file(path)
    took = time.perf_counter() - start
    gc.collect()
    return took


def line(what: str, n: int, took: float, rss_kib: int | None, extra: str = "") -> None:
    rss = "" if rss_kib is None else f"  peak RSS {rss_kib / 1024:5.0f} MiB"
    print(f"  {what:<34} {took:6.2f} s {n / took:>11,.0f} pkt/s{rss}{extra}")


def as_pcapng(path: Path, written: int, found: list[dict[str, Any]], tshark: bool) -> None:
    """The same packets as pcapng (made by tshark's editcap, if it is there), and tshark on it."""
    if shutil.which("editcap") is None:
        return
    ng = path.with_suffix(".pcapng")
    subprocess.run(["editcap", "-F", "pcapng", str(path), str(ng)], check=True)
    os.sync()  # its pages written back now, not during the timing
    took, rss, out = timed([*TCPSCEN, str(ng)])
    # The evidence names the file.
    theirs = json.loads(out.replace(ng.name.encode(), path.name.encode()))["connections"]
    same = "same connections" if theirs == found else "DIFFERENT"
    line("tcpscen analyze --json, as pcapng", written, took, rss, f"  ({same})")
    if tshark:
        against_tshark(ng, written, took, "as pcapng: ")
    ng.unlink()


def against_tshark(path: Path, written: int, took: float, what: str = "") -> None:
    """tshark's TCP conversation table on `path` (once: it takes 15 to 25 s), and the ratio."""
    theirs, trss, tout = timed(["tshark", "-q", "-r", str(path), "-z", "conv,tcp"], runs=1)
    tconvs = sum(1 for row in tout.decode().splitlines() if "<->" in row)
    line(f"{what}tshark -q -z conv,tcp", written, theirs, trss, f"  ({tconvs:,} conversations)")
    print(f"  ratio: tcpscen analyze is {theirs / took:.2f}x tshark's speed")


def against_other(other: Path | None, cmd: list[str], written: int, out: bytes | None) -> None:
    """The same command by another checkout (`--against`), in the same run: the two run in turns
    (this machine drifts, so two blocks of runs one after the other can hide a difference or make
    one up), with the median of the pairs' ratios."""
    if other is None:
        return
    ours, theirs, ratios = [], [], []
    their_out = b""
    for _ in range(5):
        a, _rss, _out = _run(cmd, None)
        b, _rss, their_out = _run(cmd, None, cwd=other)
        ours.append(a)
        theirs.append(b)
        ratios.append(b / a)
    same = "" if out is None else "  (same output)" if their_out == out else "  (OUTPUT DIFFERS)"
    line(f"  in turns with {other.name}: this", written, statistics.median(ours), None)
    line(f"  in turns with {other.name}: {other.name}", written, statistics.median(theirs), None, same)
    ratio = statistics.median(ratios)
    print(f"  ratio (median of 5 pairs): this checkout is {ratio:.2f}x {other.name}'s speed")


def small_capture(work: Path, tshark: bool, other: Path | None) -> None:
    """A run's own capture: a few hundred packets, where start-up is everything."""
    path = work / "small.pcap"
    written, conns = write_capture(path, 400, "many")
    os.sync()
    print(f"small: {written} packets, {conns} connections, {path.stat().st_size / 1e3:.0f} kB")
    for what, cmd in (
        ("tcpscen analyze", [*TCPSCEN[:-1], str(path)]),
        ("tcpscen analyze --json", [*TCPSCEN, str(path)]),
        ("  floor: python, typer, rich (import)", [sys.executable, "-c", "import typer, rich.console"]),
        ("  floor: python alone", [sys.executable, "-c", "pass"]),
    ):
        took, rss, _ = timed(cmd, runs=5)
        print(f"  {what:<38} {took:6.3f} s  peak RSS {rss / 1024:5.0f} MiB")
        if other is not None and what.startswith("tcpscen"):
            theirs, rss, _ = timed(cmd, runs=5, cwd=other)
            print(f"  {'  the same by ' + other.name:<38} {theirs:6.3f} s  peak RSS {rss / 1024:5.0f} MiB")
    if tshark:
        took, rss, _ = timed(["tshark", "-q", "-r", str(path), "-z", "conv,tcp"], runs=3)
        print(f"  {'tshark -q -z conv,tcp':<38} {took:6.3f} s  peak RSS {rss / 1024:5.0f} MiB")


def bench_capture(name: str, n: int, work: Path, tshark: bool, other: Path | None) -> None:
    """Write one capture, then time the command on it every way, and tshark."""
    path = work / f"{name}.pcap"
    t = time.perf_counter()
    written, conns = write_capture(path, n, name.removesuffix("-small"))
    os.sync()  # the file's pages written back now, not during the timing
    size = path.stat().st_size / 1e6
    made = time.perf_counter() - t
    print(f"{name}: {written:,} packets, {conns:,} connections, {size:.0f} MB (written in {made:.1f} s)")
    processes = auto_processes(read_tcp(path))
    took, rss, out = timed([*TCPSCEN, str(path)])
    found = json.loads(out)["connections"]
    retx = sum(c["retransmissions"]["client"] + c["retransmissions"]["server"] for c in found)
    ka = sum(c["keepalive_probes"]["client"] + c["keepalive_probes"]["server"] for c in found)
    line(
        f"tcpscen analyze --json ({processes} proc.)",
        written,
        took,
        rss,
        f"  ({retx:,} retransmissions, {ka:,} keep-alives)",
    )
    if name != "many-small":
        against_other(other, [*TCPSCEN, str(path)], written, out)
    took1, rss1, out1 = timed([*TCPSCEN, "-j", "1", str(path)])
    same = "same output" if out1 == out else "OUTPUT DIFFERS"
    line("tcpscen analyze --json -j 1", written, took1, rss1, f"  ({same})")
    if name == "many":
        against_other(other, [*TCPSCEN, "-j", "1", str(path)], written, out1)
    if name == "many":
        took_s, rss_s, _ = timed([*TCPSCEN[:-1], str(path)])
        line(f"tcpscen analyze (summary, {processes} proc.)", written, took_s, rss_s)
        for jobs in ([], ["-j", "1"]):
            took_n, rss_n, out_n = timed([*TCPSCEN, *jobs, str(path)], env={"TCPSCEN_NO_JIT": "1"})
            same = "same output" if out_n == out else "OUTPUT DIFFERS"
            line(f"  without numba {' '.join(jobs)}", written, took_n, rss_n, f"  ({same})")
        as_pcapng(path, written, found, tshark)
    if name == "many-small":
        return
    if tshark:
        against_tshark(path, written, took)
        print(f"  ratio, -j 1: {took / took1:.2f}x the default's speed")
    else:
        print("  tshark: skipped or not installed: no comparison")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="write the captures here and keep them")
    ap.add_argument("--no-tshark", action="store_true", help="skip the comparison with tshark")
    ap.add_argument(
        "--against",
        type=Path,
        help="another checkout (say, main's) to time the same commands with, in this run",
    )
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="tcpscen-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tshark = not args.no_tshark and shutil.which("tshark") is not None
    other = args.against.resolve() if args.against else None
    for checkout in (ROOT, other):
        if checkout is not None:  # as an install leaves it (see the Makefile's `bytecode`)
            compileall.compile_dir(str(checkout / "orchestrator"), quiet=1)
    try:
        # First, while this process is small (a child's peak RSS counts the parent's pages at
        # the fork): the small capture, then every child of the big ones before the engine here.
        small_capture(work, tshark, other)
        for name, n in (("many", args.packets), ("many-small", args.packets // 5), ("long", args.packets)):
            bench_capture(name, n, work, tshark, other)
        print("many, in this process:")
        line("the engine alone (read + analyse)", args.packets, engine_alone(work / "many.pcap"), None)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
