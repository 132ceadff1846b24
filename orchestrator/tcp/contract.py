"""The JSON of `tcpscen analyze --json`: one object per capture file.

The contract (field names and meanings never change; fields may be added)::

    {"file": "...", "packets": N, "connections": [
      {"client": "IP:PORT", "server": "IP:PORT",
       "handshake": "complete"|"partial"|"missing",
       "close": "fin"|"fin-unanswered"|"rst"|"none",
       "initiator": "client"|"server"|null, "close_packets": 3|4|null,
       "rst_from": "client"|"server"|null,
       "retransmissions": {"client": n, "server": n}, "backoff_gaps_s": [..],
       "keepalive_probes": {"client": n, "server": n},
       "keepalive": {"first_after_idle_s": x, "interval_s": y}|null,
       "zero_window": {"client": n, "server": n}, "duration_s": x, "notes": ["..."]}]}

Added beyond it: per file ``tcp_packets``, ``truncated``, ``problems``, ``linktypes`` and
``icmp_errors`` (a count); per connection ``stream`` (Wireshark's tcp.stream), ``packets``,
``start_time`` (epoch seconds of its first segment), ``frames`` (the evidence, as frame numbers
in the file, lists capped at 100) and ``predictions`` (see `kernel.predict`); per file
``totals``, across its connections (see `totals`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from orchestrator.kernel.predict import KernelPrediction, predict_connection, prediction_json
from orchestrator.kernel.settings import KernelSettings
from orchestrator.pcap.reader import IcmpError
from orchestrator.tcp.analysis import Analysis
from orchestrator.tcp.body import Body, TextBody
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, Side, SideCounts, SideFrames
from orchestrator.tcp.totals import Tally, Totals, tally_of, totals_json, totals_of

__all__ = [
    "CONNECTION_FIELDS",
    "JsonConnections",
    "PredictedConnections",
    "analysis_json",
    "connection_json",
    "prediction_json",
    "write_analysis_json",
    "write_rendered_json",
]

JOINER = ", "  # between the connections' objects in the file's list

# The contract's fields of a connection, in order.
CONNECTION_FIELDS = (
    "client",
    "server",
    "handshake",
    "close",
    "initiator",
    "close_packets",
    "rst_from",
    "retransmissions",
    "backoff_gaps_s",
    "keepalive_probes",
    "keepalive",
    "zero_window",
    "duration_s",
    "notes",
)


def analysis_json(
    analysis: Analysis, file: str, predictions: dict[int, list[KernelPrediction]] | None = None
) -> dict[str, Any]:
    """The object for one file; `predictions` by connection stream, if any were made."""
    found = predictions or {}
    return {
        "file": file,
        "packets": analysis.packets,
        "connections": [connection_json(c, found.get(c.stream, [])) for c in analysis.connections],
        **_file_extras(analysis, totals_of(_tallies(analysis, found))),
    }


def _make_dumps() -> Callable[[object], str]:
    """`json.dumps` with its defaults, for many small objects: one C encoder made once (dumps
    makes one per call, a quarter of its time on a connection's object) and no check for
    cycles (the objects here have none); the same text."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return json.dumps
    # (markers: none, default, string encoder, indent, separators, sort_keys, skipkeys, allow_nan)
    encoder = make(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )
    return lambda o: "".join(encoder(o, 0))


_dumps = _make_dumps()


def _tallies(analysis: Analysis, predictions: dict[int, list[KernelPrediction]]) -> list[Tally]:
    return [tally_of(c, predictions.get(c.stream, [])) for c in analysis.connections]


def write_analysis_json(
    out: TextIO, analysis: Analysis, file: str, predictions: dict[int, list[KernelPrediction]] | None = None
) -> None:
    """`analysis_json` written as one line of JSON, a connection at a time: the same text as
    ``json.dumps(analysis_json(...))``, without holding the whole document in memory."""
    found = predictions or {}
    texts = (_dumps(connection_json(c, found.get(c.stream, []))) for c in analysis.connections)
    write_rendered_json(out, analysis, TextBody(texts, JOINER), file, totals_of(_tallies(analysis, found)))


def _file_extras(analysis: Analysis, totals: Totals) -> dict[str, Any]:
    return {
        "tcp_packets": analysis.tcp_packets,
        "truncated": analysis.truncated,
        "problems": analysis.problems,
        "linktypes": analysis.linktypes,
        "icmp_errors": len(analysis.icmp_errors),
        "totals": totals_json(totals),
    }


def connection_json(c: ConnectionSummary, predictions: Sequence[KernelPrediction] = ()) -> dict[str, Any]:
    keepalive = c.keepalive
    return {
        "client": c.client,
        "server": c.server,
        "handshake": c.handshake,
        "close": c.close,
        "initiator": c.initiator,
        "close_packets": c.close_packets,
        "rst_from": c.rst_from,
        "retransmissions": _counts(c.retransmissions),
        "backoff_gaps_s": list(c.backoff_gaps_s),
        "keepalive_probes": _counts(c.keepalive_probes),
        "keepalive": None
        if keepalive is None
        else {"first_after_idle_s": keepalive.first_after_idle_s, "interval_s": keepalive.interval_s},
        "zero_window": _counts(c.zero_window),
        "duration_s": c.duration_s,
        "notes": list(c.notes),
        "stream": c.stream,
        "packets": c.packets,
        "start_time": c.first_frame.time if c.first_frame else None,
        "frames": {
            "first": _frame(c.first_frame),
            "last": _frame(c.last_frame),
            "syn": _frame(c.syn),
            "fin": _frames(c.fins),
            "rst": _frames(c.rsts),
            "retransmission": _frames(c.retransmission_frames),
            "keep_alive": _frames(c.keepalive_frames),
            "zero_window": _frames(c.zero_window_frames),
            "backoff": [f.frame for f in c.backoff_frames],
            "oldest_unacked": _frame(c.oldest_unacked),
        },
        "predictions": [prediction_json(p) for p in predictions],
        "copies": _copies(c),
    }


def _copies(c: ConnectionSummary) -> dict[str, Any] | None:
    """A connection whose packets the capture holds twice: the SYN's copy gap, and the
    retransmissions (as Wireshark counts them) that are copies, not re-sends."""
    if c.copy_gap_s is None:
        return None
    return {"gap_s": c.copy_gap_s, "retransmissions": _counts(c.quick_retransmissions)}


def _counts(c: SideCounts) -> dict[str, int]:
    return {"client": c.client, "server": c.server}


def _frame(f: FrameRef | None) -> int | None:
    return None if f is None else f.frame


def _frames(s: SideFrames) -> dict[str, list[int]]:
    return {"client": [f.frame for f in s.client], "server": [f.frame for f in s.server]}


class PredictedConnections:
    """Each connection rendered with the kernel model's predictions, and its tally for the
    totals (a `parallel.Renderer`); subclasses say how a connection reads (`text`)."""

    joiner: str  # between two connections' texts in the output

    def __init__(self, settings_for: Callable[[ConnectionSummary], Callable[[Side], KernelSettings]]) -> None:
        self.settings_for = settings_for

    def render(
        self, conns: list[ConnectionSummary], end: float | None, icmp_errors: list[IcmpError]
    ) -> list[tuple[str, Tally]]:
        out = []
        for c in conns:
            predictions = predict_connection(c, self.settings_for(c), icmp_errors, end)
            out.append((self.text(c, predictions), tally_of(c, predictions)))
        return out

    def text(self, c: ConnectionSummary, predictions: list[KernelPrediction]) -> str:
        raise NotImplementedError


class JsonConnections(PredictedConnections):
    """Each connection as its JSON text, predictions included."""

    joiner = JOINER

    def text(self, c: ConnectionSummary, predictions: list[KernelPrediction]) -> str:
        return _dumps(connection_json(c, predictions))


def write_rendered_json(out: TextIO, analysis: Analysis, body: Body, file: str, totals: Totals) -> None:
    """The file's object, with its connections' JSON texts (as `JsonConnections` renders them,
    in tcp.stream order, joined by `JOINER`) and their totals."""
    out.write(json.dumps({"file": file, "packets": analysis.packets})[:-1] + ', "connections": [')
    body.write(out)
    out.write("], " + json.dumps(_file_extras(analysis, totals))[1:] + "\n")
