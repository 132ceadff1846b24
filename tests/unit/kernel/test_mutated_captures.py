"""Recorded captures with bits flipped and cut short go through the whole analysis and the kernel
model: a capture that cannot be read is refused (a `TcpscenError`), anything else is analysed,
and nothing else is raised. A clock step that made a retransmission's gap negative was found
this way (seed 2: the ICMP replay's timer ran backwards into an OverflowError)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from orchestrator.errors import TcpscenError
from orchestrator.kernel.predict import capture_end, predict_connection
from orchestrator.kernel.settings import KernelSettings
from orchestrator.pcap.reader import read_tcp
from orchestrator.tcp.analysis import analyze_capture
from orchestrator.tcp.contract import connection_json

ROOT = Path(__file__).resolve().parents[3]
CAPTURES = sorted(p for p in (ROOT / "tests").rglob("*") if p.suffix in (".pcap", ".pcapng"))


def _mutated(rng: random.Random) -> bytes:
    b = bytearray(rng.choice(CAPTURES).read_bytes())
    kind = rng.choice(["flip", "cut", "flips"])
    if kind == "cut":
        return bytes(b[: rng.randrange(24, len(b))])
    for _ in range(1 if kind == "flip" else 20):
        i = rng.randrange(24, len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_mangled_capture_is_analysed_or_refused(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "mangled.pcap"
    analysed = 0
    for _ in range(600):
        path.write_bytes(_mutated(rng))
        try:
            analysis = analyze_capture(read_tcp(path))
        except TcpscenError:
            continue  # refused: not a capture, or one the reader cannot go on with
        end = capture_end(analysis.connections)
        for c in analysis.connections:
            connection_json(c, predict_connection(c, lambda _: KernelSettings(), analysis.icmp_errors, end))
        analysed += 1
    assert analysed > 300  # most are still captures
