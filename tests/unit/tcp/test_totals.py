"""The totals across a file's connections (`tcp/totals.py`): on real captures of many
connections, each total counted again here, independently, from the per-connection JSON; the
same whatever the pass and the number of processes; the readable section as a person reads it,
and nothing added for a single connection."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orchestrator.kernel.predict import predict_connection
from orchestrator.kernel.settings import parse_settings
from orchestrator.pcap.reader import read_tcp
from orchestrator.report.analysis_text import write_summary
from orchestrator.tcp.analysis import Analysis, analyze_capture
from orchestrator.tcp.note_totals import shape
from orchestrator.tcp.totals import STREAMS_KEPT, Tally, tally_of, totals_json, totals_of
from tests.unit.cli.test_analyze import cli
from tests.unit.tcp.test_fastpass import KINDS, _fast, _kernels

ROOT = Path(__file__).resolve().parents[3]
POOL = ROOT / "tests/unit/tcp/recorded/pool_cut"
# How the pool was made (README.md there): the client's settings, for the kernel model.
POOL_SETTINGS = [
    "--sysctl",
    "net.ipv4.tcp_retries2=3",
    "--sysctl",
    "net.ipv4.tcp_syn_retries=1",
    "--sockopt",
    "TCP_KEEPIDLE=1",
    "--sockopt",
    "TCP_KEEPINTVL=1",
    "--sockopt",
    "TCP_KEEPCNT=3",
]
MANY = [
    POOL / "a.pcap",
    POOL / "b.pcap",
    POOL / "late_a.pcap",
    ROOT / "tests/unit/verdict/recorded/keepalive_netns/a.pcap",
    ROOT / "tests/unit/tcp/recorded/last_ack_reuse/server.pcap",
    ROOT / "tests/unit/tcp/recorded/one_way/both.pcap",
]


def _json(path: Path, *args: str) -> dict[str, Any]:
    done = cli("--json", *args, path)
    assert done.returncode == 0, done.stderr
    got: dict[str, Any] = json.loads(done.stdout)
    return got


def _end(c: dict[str, Any]) -> tuple[str, str | None]:
    if c["handshake"] == "partial":
        return "handshake-failed", c["rst_from"]
    if c["close"] == "rst":
        return "rst", c["rst_from"]
    if c["close"] in ("fin", "fin-unanswered"):
        return c["close"], c["initiator"]
    return "none", None


def _listed(streams: list[int]) -> list[int]:
    return streams[:STREAMS_KEPT]


def _note_pattern(note: str) -> re.Pattern[str]:
    """The group's note with each number, range or '…' free again: what its members match."""
    number = r"\d+(?:\.\d+)?"
    hole = rf"{number}(?: to {number})?|…"
    free = rf"{number}(?:, {number})*(?:, \.\.\.)?"
    return re.compile(free.join(re.escape(part) for part in re.split(hole, note)))


@pytest.mark.parametrize("path", MANY, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_totals_are_the_connections_counted(path: Path) -> None:
    data = _json(path, *POOL_SETTINGS)
    conns = data["connections"]
    t = data["totals"]
    assert len(conns) > 2
    assert t["connections"] == len(conns)
    assert t["handshake"] == {
        k: sum(c["handshake"] == k for c in conns) for k in ("complete", "partial", "missing")
    }
    ends: dict[tuple[str, str | None], list[int]] = {}
    for c in conns:
        ends.setdefault(_end(c), []).append(c["stream"])
    assert {(e["end"], e["by"]): (e["count"], e["streams"]) for e in t["ends"]} == {
        k: (len(v), _listed(v)) for k, v in ends.items()
    }
    for field in ("retransmissions", "keepalive_probes", "zero_window"):
        having = [c for c in conns if c[field]["client"] or c[field]["server"]]
        assert t[field] == {
            "connections": len(having),
            "client": sum(c[field]["client"] for c in conns),
            "server": sum(c[field]["server"] for c in conns),
            "streams": _listed([c["stream"] for c in having]),
        }
    origin = min(c["start_time"] for c in conns)
    ended: dict[tuple[str, str, bool], list[tuple[float, int, bool]]] = {}
    for c in conns:
        for p in c["predictions"]:
            at = p["from"]["time"] + p["predicted_s"]
            ended.setdefault((p["kind"], p["side"], p["beyond_capture"]), []).append(
                (at, c["stream"], bool(p["within_tolerance"]))
            )
    assert len(t["model_ends"]) == len(ended)
    for m in t["model_ends"]:
        got = ended[(m["kind"], m["side"], m["beyond_capture"])]
        assert m["count"] == len(got)
        assert m["within_tolerance"] == sum(ok for _, _, ok in got)
        assert m["streams"] == _listed([s for _, s, _ in got])
        first, last = min(got), max(got, key=lambda g: (g[0], -g[1]))
        assert (m["first"]["stream"], m["last"]["stream"]) == (first[1], last[1])
        assert m["first"]["at"] == pytest.approx(first[0], abs=1e-6)
        assert m["last"]["after_s"] == pytest.approx(last[0] - origin, abs=1e-6)
    assert t["start_time"] == origin
    # Each shared note: the connections one of whose notes reads as it, numbers free.
    for n in t["shared_notes"]:
        pattern = _note_pattern(n["note"])
        members = [c["stream"] for c in conns if any(pattern.fullmatch(x) for x in c["notes"])]
        assert (n["count"], n["streams"]) == (len(members), _listed(members)), n["note"]
        assert n["count"] > 1
    exact = Counter(x for c in conns for x in set(c["notes"]) if not re.search(r"\d", x))
    shared = {n["note"]: n["count"] for n in t["shared_notes"]}
    assert {x: k for x, k in exact.items() if k > 1} == {x: k for x, k in shared.items() if x in exact}


def test_the_pool_reads_at_once() -> None:
    """The client's view of the pool under the cut, as the netns run left it (README.md)."""
    done = cli(*POOL_SETTINGS, POOL / "a.pcap")
    assert done.returncode == 0, done.stderr
    head = done.stdout[: done.stdout.index("\n#0 ")]
    assert head.splitlines()[1:] == [
        "totals over 23 connections:",
        "   handshake: 20 complete, 3 partial",
        "   ended:",
        "     10 reset by client (#5, #6, #7, #8, #9 and 5 more)",
        "      4 closed by FINs, client first (#0, #1, #2, #3)",
        "      3 only client sent FIN, server none (#15, #16, #17)",
        "      3 no FIN or RST (still open when the capture ended, or died silently) (#18, #19, #20)",
        "      2 handshake failed (#21, #22)",
        "      1 handshake failed (refused: RST from server) (#4)",
        "   retransmitted: 5 connections (retransmissions client/server 19/0) (#18, #19, #20, #21, #22)",
        "   sent keep-alive probes: 10 connections (probes client/server 30/0) "
        "(#5, #6, #7, #8, #9 and 5 more)",
        "   kernel model (times after the capture's first segment):",
        "     10 keepalive-abort by client, at +4.010 to +4.017 s; the capture shows 10 within 10% "
        "(#5, #6, #7, #8, #9 and 5 more)",
        "     3 rto-abort by client, at +7.068 to +7.069 s; the capture shows 3 within 10% (#18, #19, #20)",
        "     2 connect-timeout by client, at +3.554 s; the capture shows 2 within 10% (#21, #22)",
        "   notes shared by several connections:",
        "     10 of 23: client sent 3 keep-alive probes, the first after 1.019 to 1.025 s idle, then every "
        "1.03 s; server never answered (#5, #6, #7, #8, #9 and 5 more)",
        "     10 of 23: RST from client after 3 unanswered keep-alive probes (keepalive failure) "
        "(#5, #6, #7, #8, #9 and 5 more)",
        "     10 of 23: reset by client (#5, #6, #7, #8, #9 and 5 more)",
        "     4 of 23: client closed first; server merged its ACK into its FIN: 3-packet close "
        "(#0, #1, #2, #3)",
        "     3 of 23: only client sent FIN; server never sent its own (#15, #16, #17)",
        "     3 of 23: client retransmitted 5 times with gaps 0.206, 0.204, 0.424, 0.836, 1.628 s, then sent "
        "nothing more: no FIN, no RST (#18, #19, #20)",
        "     2 of 23: the SYN was never answered: the handshake did not complete (#21, #22)",
        "     2 of 23: client retransmitted 2 times with gaps 1.026, 1.028 s, then sent no more SYNs "
        "(#21, #22)",
    ]


def test_a_capture_started_late_says_the_model_ends_after_it() -> None:
    """Started at the cut: the RTO and connect aborts' starts are not in it (default settings)."""
    done = cli(POOL / "late_a.pcap")
    assert "   handshake: 2 partial, 16 missing\n" in done.stdout
    assert "     3 rto-abort by client, after the capture ended: +1048.383 to +1048.389 s (#0, #1, #2)\n" in (
        done.stdout
    )


@pytest.mark.parametrize("mode", [["--json"], []])
def test_one_process_or_several_say_the_same(mode: list[str]) -> None:
    """Each process tallies its own connections; the parent folds them in tcp.stream order."""
    path = POOL / "a.pcap"
    one = cli(*mode, "-j", "1", *POOL_SETTINGS, path)
    assert one.returncode == 0, one.stderr
    assert "totals" in one.stdout
    for jobs in ("2", "3"):
        several = cli(*mode, "-j", jobs, *POOL_SETTINGS, path)
        assert several.stdout == one.stdout
        assert several.stderr == one.stderr


def _totals(analysis: Analysis) -> dict[str, object]:
    settings = parse_settings(POOL_SETTINGS[1:4:2], POOL_SETTINGS[5::2])
    end = max(c.last_frame.time for c in analysis.connections if c.last_frame)
    tallies = [tally_of(c, predict_connection(c, lambda _s: settings, [], end)) for c in analysis.connections]
    return totals_json(totals_of(tallies))


@pytest.mark.parametrize("kind", KINDS)
def test_every_pass_gives_the_same_totals(kind: str) -> None:
    for path in MANY:
        reference = _totals(analyze_capture(read_tcp(path), vectorised=False))
        assert _totals(analyze_capture(read_tcp(path))) == reference
        assert _totals(_fast(path, _kernels(kind))) == reference


def test_one_connection_gets_no_totals_section() -> None:
    path = ROOT / "tests/unit/tcp/recorded/fin_wait2/closed.pcap"
    done = cli(path)
    assert done.stdout.count("\n#") == 1  # one connection
    assert "totals" not in done.stdout
    assert _json(path)["totals"]["connections"] == 1


def _tallies(*notes: list[str]) -> list[Tally]:
    return [
        Tally(0.0, "complete", "none", None, (0, 0), (0, 0), (0, 0), (), tuple(shape(n) for n in ns))
        for ns in notes
    ]


def test_notes_group_by_their_words() -> None:
    t = totals_of(
        _tallies(
            ["server answered 1 probe", "RST (frame 12) from client", "gaps 0.2, 0.4 s", "alone 1"],
            ["server answered 3 probes", "RST (frame 40) from client", "gaps 0.2, 0.5 s"],
            ["server answered 2 probes", "RST (frame 40) from client", "gaps 0.2, 0.4 s", "twice", "twice"],
            ["twice"],
        )
    )
    assert [(n.note, n.count, n.streams) for n in t.shared_notes] == [
        ("server answered 1 to 3 probes", 3, [0, 1, 2]),  # the plural's wording, each value's range
        ("RST (frame …) from client", 3, [0, 1, 2]),  # frame numbers are no range
        ("gaps … s", 3, [0, 1, 2]),  # a list of numbers, as it differs
        ("twice", 2, [2, 3]),  # once per connection
    ]


def test_a_terminal_shows_the_same_totals_as_a_pipe() -> None:
    analysis = analyze_capture(read_tcp(POOL / "b.pcap"))
    texts = []
    for terminal in (True, False):
        out = io.StringIO()
        console = Console(
            file=out, force_terminal=terminal, color_system=None, soft_wrap=True, highlight=False
        )
        write_summary(out, console, "b.pcap", analysis, {})
        texts.append(out.getvalue())
    assert "\ntotals over 21 connections:\n" in texts[1]
    assert texts[0] == texts[1]
