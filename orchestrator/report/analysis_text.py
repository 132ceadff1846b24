"""The readable summary of `tcpscen analyze`: the file's line, its totals (two connections or
more), then a block per connection.

Each block is made as (text, style) pieces. On a terminal, rich shows them with their styles;
anywhere else (a pipe, a file) the styles would be dropped anyway, so the text is written as
it is: rich's layout costs more than the analysis for a capture of thousands of connections.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console
from rich.text import Text

from orchestrator.kernel.predict import TOLERANCE, KernelPrediction
from orchestrator.report.totals_text import Piece, totals_pieces
from orchestrator.tcp.analysis import Analysis
from orchestrator.tcp.body import Body, TextBody
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.contract import PredictedConnections
from orchestrator.tcp.notes import uneven_gaps
from orchestrator.tcp.totals import Totals, tally_of, totals_of

__all__ = ["LINKTYPE_NAMES", "TextConnections", "write_rendered_summary", "write_summary"]

JOINER = "\n"  # between two connections' blocks

LINKTYPE_NAMES = {
    0: "BSD loopback",
    1: "Ethernet",
    101: "raw IP",
    108: "OpenBSD loopback",
    113: "Linux cooked v1",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2",
}


def write_summary(
    out: TextIO,
    console: Console,
    file: str,
    analysis: Analysis,
    predictions: dict[int, list[KernelPrediction]],
) -> None:
    """The file's line and totals, then a block per connection: styled on a terminal, plain
    elsewhere."""
    totals = totals_of([tally_of(c, predictions.get(c.stream, [])) for c in analysis.connections])
    if not console.is_terminal:
        texts = [_plain(_connection(c, predictions.get(c.stream, []))) for c in analysis.connections]
        write_rendered_summary(out, file, analysis, TextBody(texts, JOINER), totals)
        return
    for pieces in _blocks(file, analysis, predictions, totals):
        console.print(Text.assemble(*((text, style or "") for text, style in pieces)))


class TextConnections(PredictedConnections):
    """Each connection's block as plain text, predictions included."""

    joiner = JOINER

    def text(self, c: ConnectionSummary, predictions: list[KernelPrediction]) -> str:
        return _plain(_connection(c, predictions))


def write_rendered_summary(out: TextIO, file: str, analysis: Analysis, body: Body, totals: Totals) -> None:
    """`write_summary`'s plain text, from blocks already rendered by `TextConnections` (in
    tcp.stream order, joined by `JOINER`) and their totals."""
    out.write(_plain(_head(file, analysis, totals.connections)) + "\n")
    across = totals_pieces(totals)
    if across:
        out.write(_plain(across) + "\n")
    if totals.connections:  # a block each
        body.write(out)
        out.write("\n")


def _plain(pieces: list[Piece]) -> str:
    return "".join(text for text, _style in pieces)


def _head(file: str, analysis: Analysis, n: int) -> list[Piece]:
    links = ", ".join(LINKTYPE_NAMES.get(t, f"link type {t}") for t in analysis.linktypes) or "no link type"
    head: list[Piece] = [
        (file, "bold"),
        (
            f": {analysis.packets:,} frames, {analysis.tcp_packets:,} TCP segments, "
            f"{n:,} connection{'' if n == 1 else 's'} ({links})",
            None,
        ),
    ]
    if analysis.truncated:
        head.append(("  truncated: analysed up to the cut", "yellow"))
    if analysis.headers_cut:
        head.append(
            (
                f"  {analysis.headers_cut:,} TCP segment{'' if analysis.headers_cut == 1 else 's'} not "
                "analysed (the snap length cut their header)",
                "yellow",
            )
        )
    return head


def _blocks(
    file: str, analysis: Analysis, predictions: dict[int, list[KernelPrediction]], totals: Totals
) -> Iterator[list[Piece]]:
    yield _head(file, analysis, len(analysis.connections))
    across = totals_pieces(totals)
    if across:
        yield across
    for conn in analysis.connections:
        yield _connection(conn, predictions.get(conn.stream, []))


def _connection(c: ConnectionSummary, predictions: list[KernelPrediction]) -> list[Piece]:
    t: list[Piece] = [
        (f"#{c.stream} {c.client} → {c.server}", "bold"),
        (f"  {c.packets:,} packets, {c.duration_s:.3f} s\n", None),
    ]
    close = f"close {c.close}"
    if c.initiator is not None:
        close += f" (first FIN from {c.initiator}" + (
            f", {c.close_packets} packets)" if c.close_packets else ")"
        )
    if c.rst_from is not None:
        close += f", RST from {c.rst_from}"
    t.append((f"   handshake {c.handshake} · {close}\n", None))
    t.append(
        (
            f"   client/server: retransmissions {c.retransmissions.client}/{c.retransmissions.server}"
            f"{_copies(c)} · keep-alives {c.keepalive_probes.client}/{c.keepalive_probes.server}"
            f" · zero windows {c.zero_window.client}/{c.zero_window.server}\n",
            None,
        )
    )
    if c.backoff_gaps_s:
        t.append(("   backoff gaps " + ", ".join(f"{g:.3f}" for g in c.backoff_gaps_s) + " s\n", None))
    if c.keepalive is not None:
        every = "" if c.keepalive.interval_s is None else f", then every {c.keepalive.interval_s:.3f} s"
        side = c.keepalive_from
        if (
            every
            and side is not None
            and c.keepalive_in_zero_window.get(side) == c.keepalive_probes.get(side)
        ):
            # zero-window probes back off: uneven gaps are shown as they are
            gaps = [b.time - a.time for a, b in itertools.pairwise(c.keepalive_frames.of(side))]
            uneven = uneven_gaps(gaps, lambda g: f"{g:.3f}")
            every = every if uneven is None else f", then at gaps of {uneven} s"
        t.append(
            (
                f"   keep-alive probes: the first after {c.keepalive.first_after_idle_s:.3f} s idle{every}\n",
                None,
            )
        )
    t.extend((f"   · {note}\n", "dim") for note in c.notes)
    for p in predictions:
        t.extend(_prediction(p))
    text, style = t[-1]
    t[-1] = (text.rstrip(), style)
    return t


def _prediction(p: KernelPrediction) -> list[Piece]:
    by = "at most " if p.upper_bound else ""
    t: list[Piece] = [
        (f"   model: {p.kind} by {p.side}, {by}{p.predicted_s:g} s after {p.start}\n", None),
        (f"          {p.basis}\n", None),
    ]
    if p.observed_s is None and p.observed_window is not None:
        ok = bool(p.within_tolerance)
        t.append((f"     observed: {p.observed_window[0]:.3f} to {p.observed_window[1]:.3f} s (", None))
        t.append(
            ("the model's end within" if ok else "the model's end outside", "green" if ok else "bold red")
        )
        t.append((f"): {p.observed}\n", None))
    elif p.observed_s is None:
        t.append((f"     observed: none ({p.observed})\n", "yellow"))
    else:
        ok = bool(p.within_tolerance)
        if p.upper_bound:
            verdict = "within the bound" if ok else "past the bound"
        else:
            verdict = f"within {TOLERANCE:.0%}" if ok else f"outside {TOLERANCE:.0%}"
        t.append((f"     observed: {p.observed_s:.3f} s ({p.deviation:+.1%}, ", None))
        t.append((verdict, "green" if ok else "bold red"))
        t.append((f"): {p.observed}\n", None))
    t.extend((f"     ↳ {why}\n", "italic") for why in p.explanations)
    return t


def _copies(c: ConnectionSummary) -> str:
    """How many of the retransmissions are copies, in a capture that holds packets twice."""
    if c.copy_gap_s is None:
        return ""
    return f" (copies {c.quick_retransmissions.client}/{c.quick_retransmissions.server})"
