"""The compiled functions loaded from numba's cache without its target's refresh
(`compiled._load_quickly`) give what compiling them gives, and what the plain pass gives.

Each run is a fresh process with its own, empty numba cache: the first compiles (and caches),
the second loads. Both must be the analysis without numba, byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.tcp import compiled
from tests.unit.tcp.test_vector import _bench

ROOT = Path(__file__).resolve().parents[3]

# In a child: the compiled plan for any size, its dispatchers' cache counters, then the command.
_RUN = """
import json, sys
from orchestrator.tcp import compiled
compiled.MIN_BYTES = 0
walks, k = compiled.compiled()
ds = [k.analyze_rows, k.rehash, k.key_rows, walks.records, walks.epbs, walks.gather, walks.fields]
stats = {"hits": sum(sum(d.stats.cache_hits.values()) for d in ds),
         "misses": sum(sum(d.stats.cache_misses.values()) for d in ds),
         "refreshed": "numba.np.linalg" in sys.modules}  # imported by the target's refresh only
print(json.dumps(stats), file=sys.stderr)
from orchestrator.cli import entry
sys.argv = ["tcpscen", "analyze", "--json", *sys.argv[1:]]
entry.main()
"""


def _run(capture: Path, cache: Path, *args: str, jit: bool = True) -> tuple[str, dict[str, int | bool]]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    if not jit:
        env["TCPSCEN_NO_JIT"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *args, str(capture)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1]) if jit else {}


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed (the `fast` extra)")
def test_loaded_from_the_cache_the_functions_give_what_compiled_ones_give(tmp_path: Path) -> None:
    capture = tmp_path / "c.pcap"
    _bench().write_capture(capture, 30_000, "many", seed=7)
    plain, _ = _run(capture, tmp_path / "unused", jit=False)
    cache = tmp_path / "numba"
    first, made = _run(capture, cache)
    assert made["misses"] and not made["hits"] and made["refreshed"]  # compiled here
    again, loaded = _run(capture, cache)
    assert loaded["hits"] == 7 and not loaded["misses"]  # every one loaded, none compiled
    assert not loaded["refreshed"]  # without the refresh only compiling needs
    two, _ = _run(capture, cache, "-j", "2")  # forked children use what the parent loaded
    assert first == again == two == plain
    assert json.loads(plain)["connections"]


def test_a_dispatcher_without_the_expected_cache_is_left_as_it_is() -> None:
    class Bare:
        pass

    bare = Bare()
    assert compiled._load_quickly(bare) is bare
    assert not hasattr(bare, "_cache")
