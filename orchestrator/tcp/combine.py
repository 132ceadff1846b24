"""One connection, seen three ways, combined so each fact comes from where it is true.

* What each kernel **did** (FINs, RSTs, how the close went) comes from the merged stream of every
  host's own sends: a packet lost on the wire still counts for its sender.
* What each kernel **experienced** (its retransmissions, keep-alives, zero windows, what it had
  unacknowledged, when it went idle) comes from that host's own capture: in a one-way blackhole the
  server's ACKs leave the server but never reach the client, whose kernel backs off regardless.
  This is also what Wireshark shows when the host's own pcap is opened.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from orchestrator.tcp.connection import ConnectionSummary, SideCounts, SideFrames

Side = Literal["client", "server"]
SIDES: tuple[Side, Side] = ("client", "server")


def find_same(connections: list[ConnectionSummary], like: ConnectionSummary) -> ConnectionSummary | None:
    """The same 4-tuple in another view (the one whose time overlaps most, if the tuple was reused)."""
    ends = {like.client, like.server}
    same = [c for c in connections if {c.client, c.server} == ends]
    if not same or like.first_frame is None:
        return same[0] if same else None
    start = like.first_frame.time
    return min(same, key=lambda c: abs((c.first_frame.time if c.first_frame else start) - start))


def combine(merged: ConnectionSummary, views: dict[Side, ConnectionSummary | None]) -> ConnectionSummary:
    def counts(field: str) -> SideCounts:
        out = SideCounts()
        for side in SIDES:
            view = views[side]
            source = view if view is not None else merged
            out.add(side, getattr(source, field).get(side))
        return out

    def frames(field: str) -> SideFrames:
        out = SideFrames()
        for side in SIDES:
            view = views[side]
            source = view if view is not None else merged
            out.of(side).extend(getattr(source, field).of(side))
        return out

    retransmissions = counts("retransmissions")
    probes = counts("keepalive_probes")
    backoff_side: Side = "client" if retransmissions.client >= retransmissions.server else "server"
    prober: Side = "client" if probes.client >= probes.server else "server"
    backoff_view = views[backoff_side] or merged
    probe_view = views[prober] or merged
    return dataclasses.replace(
        merged,
        retransmissions=retransmissions,
        retransmission_frames=frames("retransmission_frames"),
        keepalive_probes=probes,
        keepalive_frames=frames("keepalive_frames"),
        zero_window=counts("zero_window"),
        zero_window_frames=frames("zero_window_frames"),
        backoff_gaps_s=list(backoff_view.backoff_gaps_s),
        backoff_frames=list(backoff_view.backoff_frames),
        keepalive=probe_view.keepalive,
        notes=_notes(merged, views),
    )


def _notes(merged: ConnectionSummary, views: dict[Side, ConnectionSummary | None]) -> list[str]:
    """Each capture's own explanation, as Wireshark on that file would lead one to; where both agree, once."""
    seen = {side: view.notes for side, view in views.items() if view is not None}
    if not seen:
        return list(merged.notes)
    out: list[str] = []
    for side, notes in seen.items():
        for note in notes:
            others = [s for s, n in seen.items() if s != side and note in n]
            if others and side != SIDES[0]:
                continue  # already said as "both captures"
            out.append(f"{'both captures' if others else side + ' capture'}: {note}")
    return out
