"""The direction keys' table: each segment's 4-tuple as a number per direction, for the array
loop (`arrayloop`, whose `flow_of` they index). IPv4 4-tuples are looked up here, in an
open-addressing table of arrays, compiled by numba with the loop (`compiled`); IPv6 ones in a
dictionary; both in a `KeyTable`, which the compiled pass (`fastpass`) keeps between chunks. A
4-tuple's reverse gets the next key, as the loop's dictionary holds both directions of a
connection.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from orchestrator.pcap.columns import Columns
from orchestrator.pcap.reader import TcpPacket
from orchestrator.tcp.segments import FlowKey

__all__ = ["KeyTable", "grow_flat", "key_hash", "key_rows"]

I64 = npt.NDArray[np.int64]


def key_hash(x: int, y: int) -> int:
    """A 4-tuple's hash (x, y < 2**48: no term overflows 64 bits, compiled or not)."""
    return x ^ ((x >> 16) * 0x9E37) ^ (y << 5) ^ ((y >> 16) * 0x7FEB)


def key_rows(a: I64, b: I64, ka: I64, kb: I64, kk: I64, n_keys: I64, same: I64, out: I64) -> None:
    """Each segment's direction key, from its 4-tuple as two numbers (`a` from, `b` to): found
    in the open-addressing table (`ka`, `kb` the 4-tuples, `kk` their keys; -1 empty), or made,
    and its reverse with the next key (`n_keys[0]`: keys made so far; `n_keys[1]`: table slots
    used). The caller makes room: the table at most half full after two more per segment, and
    `same` as long as the keys after two more per segment."""
    mask = len(kk) - 1
    for j in range(len(a)):
        x, y = a[j], b[j]
        h = key_hash(x, y) & mask
        while kk[h] >= 0 and (ka[h] != x or kb[h] != y):
            h = (h + 1) & mask
        if kk[h] < 0:
            k = n_keys[0]
            n_keys[0] = k + 2
            ka[h], kb[h], kk[h] = x, y, k
            n_keys[1] += 1
            if x == y:  # the loop's dictionary has one entry for both directions: the second's
                same[k] = 1
            else:
                g = key_hash(y, x) & mask
                while kk[g] >= 0:
                    g = (g + 1) & mask
                ka[g], kb[g], kk[g] = y, x, k + 1
                n_keys[1] += 1
        out[j] = kk[h]


class KeyTable:
    """Every 4-tuple's direction key so far: IPv4 ones in the open-addressing arrays that
    `key_rows` (compiled or not: `rows`) probes, IPv6 ones in a dictionary; both count in
    `n_keys[0]`. `same[k]` is 1 where key `k`'s 4-tuple is its own reverse."""

    def __init__(self, rows: Callable[..., None]) -> None:
        self.rows = rows
        self.v6: dict[FlowKey, int] = {}
        self.n_keys = np.zeros(2, dtype=np.int64)
        self.ka = np.zeros(1024, dtype=np.int64)
        self.kb = np.zeros(1024, dtype=np.int64)
        self.kk = np.full(1024, -1, dtype=np.int64)
        self.same = np.zeros(64, dtype=np.int64)

    @property
    def made(self) -> int:
        """How many keys there are (each 4-tuple's and its reverse's)."""
        return int(self.n_keys[0])

    def of_columns(self, cols: Columns) -> I64:
        """Each segment's direction key, from a chunk's columns (IPv4 only)."""
        return self.ip4((cols.src << 16) | cols.sport, (cols.dst << 16) | cols.dport)

    def of_packets(self, pk: list[TcpPacket]) -> I64:
        """Each segment's direction key, from its packet: IPv4 as the columns give it."""
        v4 = [k for k, p in enumerate(pk) if ":" not in p.src]
        out = np.empty(len(pk), dtype=np.int64)
        if v4:
            a = np.array([(_ip4(pk[k].src) << 16) | pk[k].sport for k in v4], dtype=np.int64)
            b = np.array([(_ip4(pk[k].dst) << 16) | pk[k].dport for k in v4], dtype=np.int64)
            out[v4] = self.ip4(a, b)
        for k, p in enumerate(pk):
            if ":" in p.src:
                out[k] = self.ip6(p)
        return out

    def ip4(self, a: I64, b: I64) -> I64:
        """The direction keys of segments between IPv4 endpoints (`a` from, `b` to, each
        (address << 16) | port)."""
        n = len(a)
        used = int(self.n_keys[1])
        if 2 * (used + 2 * n) > len(self.kk):  # a larger table, the keys put in again
            size = 1 << (4 * (used + 2 * n)).bit_length()
            old = self.kk >= 0
            xa, xb, xk = self.ka[old], self.kb[old], self.kk[old]
            self.ka = np.zeros(size, dtype=np.int64)
            self.kb = np.zeros(size, dtype=np.int64)
            self.kk = np.full(size, -1, dtype=np.int64)
            self.n_keys[1] = 0
            self._put(xa, xb, xk)
        self.same = grow_flat(self.same, self.made + 2 * n, 0)
        out = np.empty(n, dtype=np.int64)
        self.rows(
            np.ascontiguousarray(a),
            np.ascontiguousarray(b),
            self.ka,
            self.kb,
            self.kk,
            self.n_keys,
            self.same,
            out,
        )
        return out

    def _put(self, xa: I64, xb: I64, xk: I64) -> None:
        """Put known 4-tuples with their keys into an empty table (as `key_rows` probes)."""
        mask = len(self.kk) - 1
        for x, y, k in zip(xa.tolist(), xb.tolist(), xk.tolist(), strict=True):
            h = key_hash(x, y) & mask
            while self.kk[h] >= 0:
                h = (h + 1) & mask
            self.ka[h], self.kb[h], self.kk[h] = x, y, k
        self.n_keys[1] = len(xk)

    def ip6(self, p: TcpPacket) -> int:
        """An IPv6 segment's direction key; the 4-tuple's reverse gets the next one."""
        key = (p.src, p.sport, p.dst, p.dport)
        k = self.v6.get(key)
        if k is None:
            k = self.v6[key] = self.made
            self.n_keys[0] += 2
            rev = (p.dst, p.dport, p.src, p.sport)
            self.same = grow_flat(self.same, self.made, 0)
            if rev == key:  # the loop's dictionary has one entry for both directions: the second's
                self.same[k] = 1
            else:
                self.v6[rev] = k + 1
        return k


def grow_flat(a: I64, n: int, fill: int = -1) -> I64:
    """`a` with room for `n` entries (at least double), the new ones `fill`."""
    if len(a) >= n:
        return a
    out = np.full(max(n, 2 * len(a)), fill, dtype=np.int64)
    out[: len(a)] = a
    return out


@functools.lru_cache(maxsize=1 << 16)
def _ip4(addr: str) -> int:
    return int.from_bytes(socket.inet_aton(addr), "big")
