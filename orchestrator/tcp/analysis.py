"""Per-connection TCP facts, computed in one streaming pass, in agreement with Wireshark.

`analyze` groups TCP segments into connections and returns one `ConnectionSummary` per
connection, in order of first appearance (Wireshark's ``tcp.stream`` order). This module is the
entry point: the pass itself is the reference loop (`loop`), or, for a whole capture, the
vectorised pass (`vector`) that hands it what it does not take; the state they keep is in
`flows`, the rarer segments are handled in `segments`, and the summaries (client and server,
close rule, backoff, keep-alive timing) are built in `summarize`.

Wireshark agreement
-------------------
The per-segment flags are a port of ``tcp_analyze_sequence_number`` in Wireshark's
``epan/dissectors/packet-tcp.c``, checked against tshark 4.0.17 (the version on these machines)
with crafted captures and a randomised differential test (``tests/unit/test_analysis.py``):

* ``tcp.analysis.retransmission`` is set for plain retransmissions **and** for fast and spurious
  retransmissions (the dissector adds the retransmission expert item to those too), but **not**
  for out-of-order segments. The order of the checks is tshark 4.0's: a keep-alive is never a
  retransmission; then spurious (data entirely at or below the peer's last ACK), then fast (>= 2
  duplicate ACKs from the peer, seq equal to their ACK, within 20 ms of the last of them), then
  out-of-order (within the initial RTT, or 3 ms without a captured handshake, of the segment that
  last advanced the sequence, and not an exact repeat of it), then plain retransmission (seq
  below the next expected one).
* ``tcp.analysis.keep_alive``: 0 or 1 byte, seq = next expected - 1, no SYN/FIN/RST, unless it
  is a zero-window probe (1 byte at the next expected seq while the peer's window is 0), which
  Wireshark checks first. Linux sends its own zero-window probes as 0-byte segments at
  snd_una - 1, so Wireshark (and so we) count them as keep-alives; the notes say so when the
  peer's window was 0 at the time.
* ``tcp.analysis.zero_window``: window 0 on a segment without SYN/FIN/RST, so a window-0 RST does
  not count; nor does a zero-window probe (Wireshark skips the check for it).
* The initial RTT (the out-of-order threshold) is the time from the latest SYN to the first ACK
  without SYN; a SYN stamped exactly 0 counts as no SYN.
* Two quirks of tshark 4.0.17, pinned down by experiment (the current source reads
  differently): after an "ACKed unseen segment" whose mark is not behind the peer's next seq,
  the peer's duplicate-ACK counter is set to -1, which, being unsigned there, makes a matching
  segment within 20 ms a *fast* retransmission; and the same SYN again mid-connection resets the
  next expected seq to the highest contiguous one (Wireshark issue 17616).
* Time comparisons use integer nanoseconds, as Wireshark does.

One deliberate gap: Wireshark stops tracking unacknowledged segments after 10,000 of them in one
direction; we do not model that (it only matters for captures missing one direction).

Connections
-----------
Keyed by the unordered 4-tuple. As in Wireshark, a SYN (without ACK) whose sequence number
differs from the one already known for its sender on that tuple starts a new connection (port
reuse); a SYN with the same sequence number is a retransmission. Data without a new SYN stays in
the same connection, so "peer rebooted, we send, it answers RST" is one connection.

The input may be a time-ordered merge of several files (each host's own sends), so
"before/after" is position in the input stream, never frame numbers, which only order frames
within one file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.pcap.reader import IcmpError, TcpCapture, TcpPacket, read_tcp
from orchestrator.tcp.connection import ConnectionSummary
from orchestrator.tcp.flows import LABELS, MAX_EVIDENCE, Label
from orchestrator.tcp.loop import Mark, analyze_stream, summarize_pass
from orchestrator.tcp.sizing import is_small

__all__ = [
    "LABELS",
    "MAX_EVIDENCE",
    "Analysis",
    "Label",
    "Mark",
    "analysis_of",
    "analyze",
    "analyze_capture",
    "analyze_file",
]


@dataclass(slots=True)
class Analysis:
    """The connections of one capture, and what the reader said about the file."""

    connections: list[ConnectionSummary]
    packets: int  # frames read, TCP or not
    tcp_packets: int
    truncated: bool
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    linktypes: list[int] = field(default_factory=list)
    icmp_errors: list[IcmpError] = field(default_factory=list)  # destination unreachable, capped
    headers_cut: int = 0  # TCP segments the snap length cut before their window: not analysed


def analyze_capture(capture: TcpCapture, *, mark: Mark | None = None, vectorised: bool = True) -> Analysis:
    """Read a whole capture and analyse it. Without `mark`, the compiled pass (`fastpass`, for a
    big capture where numba is installed) or the vectorised pass (`vector`) does the work
    (`vectorised=False`: the loop alone, the reference): the same result, faster."""
    if mark is None and vectorised and not is_small(capture):
        # Imported here: numpy takes 0.15 s to import, and small captures (`sizing`) and the
        # commands that only judge runs (through `analyze`) never need it.
        from orchestrator.pcap.chunks import read_chunks  # noqa: PLC0415
        from orchestrator.tcp.compiled import plan_for  # noqa: PLC0415

        plan = plan_for(capture)
        conns = summarize_pass(lambda: plan.passing(read_chunks(capture, plan.walks)))
    else:
        conns = _analyze(capture.pairs(), mark)
    return analysis_of(capture, conns)


def analysis_of(capture: TcpCapture, conns: list[ConnectionSummary]) -> Analysis:
    """An `Analysis` of `conns` with what the reader said about the file (read to its end)."""
    problems = [capture.problem] if capture.problem else []
    if capture.headers_cut:
        problems.append(_headers_cut_problem(capture.name, capture.headers_cut))
    return Analysis(
        connections=conns,
        packets=capture.packets,
        tcp_packets=capture.tcp_packets,
        truncated=capture.truncated,
        files=[capture.name],
        problems=problems,
        linktypes=sorted(capture.linktypes),
        icmp_errors=list(capture.icmp_errors),
        headers_cut=capture.headers_cut,
    )


def _headers_cut_problem(name: str, n: int) -> str:
    """What to say of segments the snap length cut (tshark cannot analyse them either)."""
    return (
        f"{name}: {n:,} TCP segment{'' if n == 1 else 's'} not analysed: the snap length cut "
        "the TCP header (capture again with a larger one, e.g. tcpdump -s 128)"
    )


def analyze_file(path: Path | str, *, mark: Mark | None = None) -> Analysis:
    """`read_tcp` then `analyze_capture`. Raises `CaptureFormatError` for a file that is not a capture."""
    return analyze_capture(read_tcp(path), mark=mark)


def analyze(packets: Iterable[TcpPacket], *, mark: Mark | None = None) -> list[ConnectionSummary]:
    """Group TCP segments (in capture order) into connections and summarise each.

    One pass, per-connection state only; evidence lists are capped at `MAX_EVIDENCE` frames
    while counts stay exact. `mark`, if given, is called for every segment (see `Mark`).

    The cyclic garbage collector is paused during the pass: the pass creates no garbage cycles
    (a connection's objects stay reachable until the summaries are built), and the collector's
    repeated walks over the live per-connection state cost a quarter to a third of the time on big
    captures.
    """
    return _analyze(enumerate(packets, 1), mark)


def _analyze(stream: Iterable[tuple[int, TcpPacket]], mark: Mark | None) -> list[ConnectionSummary]:
    return summarize_pass(lambda: analyze_stream(stream, mark))
