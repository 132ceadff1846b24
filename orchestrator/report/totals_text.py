"""The totals section of `tcpscen analyze`'s readable summary: a file's connections counted
across them (`tcp.totals`), after the file's line, for two connections or more. Each group says
how many and names its first streams, so that it stays a few lines for thousands."""

from __future__ import annotations

from orchestrator.kernel.predict import TOLERANCE
from orchestrator.tcp.totals import End, ModelEndTotal, SidesTotal, Totals

__all__ = ["Piece", "totals_pieces"]

# Text and its rich style (None: plain), as `analysis_text`'s blocks.
Piece = tuple[str, str | None]

SHOWN_STREAMS = 5  # stream numbers named per group; the rest are counted
SHOWN_NOTES = 8  # shared notes shown, the commonest first
_ENDS: dict[End, str] = {
    "fin": "closed by FINs, {by} first",
    "fin-unanswered": "only {by} sent FIN, {other} none",
    "rst": "reset by {by}",
    "none": "no FIN or RST (still open when the capture ended, or died silently)",
    "handshake-failed": "handshake failed",
}


def totals_pieces(t: Totals) -> list[Piece]:
    """What a capture of many connections says across them (nothing for one connection)."""
    if t.connections < 2:
        return []
    head: list[Piece] = [("totals", "bold"), (f" over {t.connections:,} connections:", None)]
    hs = ", ".join(f"{n:,} {kind}" for kind, n in t.handshake.items() if n)
    lines = [f"   handshake: {hs}", "   ended:"]
    width = max(len(f"{e.count:,}") for e in t.ends)
    lines += [f"     {e.count:>{width},} {_end(e.end, e.by)}{_streams(e.count, e.streams)}" for e in t.ends]
    lines += _sides("retransmitted", "retransmissions", t.retransmissions)
    lines += _sides("sent keep-alive probes", "probes", t.keepalive_probes)
    lines += _sides("advertised a zero window", "zero windows", t.zero_window)
    if t.model_ends:
        lines.append("   kernel model (times after the capture's first segment):")
        lines += [f"     {_model_end(m)}" for m in t.model_ends]
    if t.shared_notes:
        lines.append("   notes shared by several connections:")
        for n in t.shared_notes[:SHOWN_NOTES]:
            lines.append(f"     {n.count:,} of {t.connections:,}: {n.note}{_streams(n.count, n.streams)}")
        if len(t.shared_notes) > SHOWN_NOTES:
            lines.append(f"     and {len(t.shared_notes) - SHOWN_NOTES} more shared notes (--json: totals)")
    return [*head, ("\n" + "\n".join(lines), None)]


def _end(end: End, by: str | None) -> str:
    if end == "handshake-failed" and by is not None:
        return f"handshake failed (refused: RST from {by})"
    return _ENDS[end].format(by=by, other="server" if by == "client" else "client")


def _sides(what: str, unit: str, s: SidesTotal) -> list[str]:
    if not s.connections:
        return []
    return [
        f"   {what}: {s.connections:,} connection{'' if s.connections == 1 else 's'} "
        f"({unit} client/server {s.client:,}/{s.server:,}){_streams(s.connections, s.streams)}"
    ]


def _model_end(m: ModelEndTotal) -> str:
    first, last = f"+{m.first_s:.3f}", f"+{m.last_s:.3f}"
    when = f"{first} s" if first == last else f"{first} to {last} s"
    if m.beyond_capture:
        seen = f"after the capture ended: {when}"
    else:
        seen = f"at {when}; the capture shows {m.within_tolerance:,} within {TOLERANCE:.0%}"
    return f"{m.count:,} {m.kind} by {m.side}, {seen}{_streams(m.count, m.streams)}"


def _streams(count: int, streams: list[int]) -> str:
    named = ", ".join(f"#{s}" for s in streams[:SHOWN_STREAMS])
    more = count - min(count, SHOWN_STREAMS)
    return f" ({named}" + (f" and {more:,} more)" if more else ")")
