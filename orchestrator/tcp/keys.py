"""The direction keys' table: each segment's 4-tuple as a number per direction, for the array
loop (`arrayloop`, whose `flow_of` they index). IPv4 4-tuples are looked up here, in an
open-addressing table of arrays, compiled by numba with the loop (`compiled`); IPv6 ones in a
dictionary (`fastpass`). A 4-tuple's reverse gets the next key, as the loop's dictionary holds
both directions of a connection.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["key_hash", "key_rows"]

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
