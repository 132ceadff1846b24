"""What the live display shows while a scenario runs: the packets each side has captured so far,
and the panel itself (step, time left, timeline, packets).

The captures grow in the run directory as tcpdump writes them (-U: one write per packet), so
counting is reading the new bytes since the last look and walking the record headers, never the
packets themselves: a few kilobytes per refresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from orchestrator.pcap import pcap, pcapng
from orchestrator.report.terminal import printable

BAR = 40  # characters of the time bar


class _Tail:
    """One growing capture file: its records counted up to `offset`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.count = 0
        self.kind = ""  # unknown until the file header is there; then pcap, pcapng or other
        self.endian = "<"
        self.header: pcap.FileHeader | None = None

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return self.count
        pos = 0
        if not self.kind:
            pos = self._header(data)
        if self.kind == "pcapng":
            n, pos = pcapng.count_packets(data, pos, self.endian)
        elif self.header is not None:
            n, pos = pcap.count_records(data, pos, self.header)
        else:  # not there yet, or not a capture we know: count nothing
            return self.count
        self.count += n
        self.offset += pos
        return self.count

    def _header(self, data: bytes) -> int:
        if len(data) < pcap.FILE_HEADER.size:
            return 0
        if pcap.byte_order(data) is not None:
            self.kind = "pcap"
            self.header = pcap.parse_header(data)
            return pcap.FILE_HEADER.size
        order = pcapng.section_order(data)
        if int.from_bytes(data[:4], "little") == pcapng.SHB and order is not None:
            self.kind, self.endian = "pcapng", order
        else:
            self.kind = "other"  # stop looking
        return 0


class CaptureCounter:
    """Packets captured so far per host, from HOST.pcap and HOST.bootN.pcap in the run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.tails: dict[Path, _Tail] = {}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for path in sorted(self.run_dir.glob("*.pcap")):
            tail = self.tails.get(path)
            if tail is None:
                tail = self.tails[path] = _Tail(path)
            host = path.name.split(".", 1)[0]
            out[host] = out.get(host, 0) + tail.poll()
        return out


def describe_counts(counts: dict[str, int]) -> str:
    return (
        ", ".join(f"{host} {n} packet{'s' if n != 1 else ''}" for host, n in counts.items()) or "nothing yet"
    )


@dataclass
class RunState:
    """What the panel shows, updated by the observer from the runner's thread."""

    scenario: str
    duration: float
    steps: list[str]  # the timeline, described
    counter: CaptureCounter
    current: str = "starting"
    t0: float | None = None
    applied: list[str] = field(default_factory=list)

    def panel(self) -> RenderableType:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", justify="right")
        grid.add_column()
        grid.add_row("scenario", Text(printable(self.scenario), style="bold cyan"))
        grid.add_row("step", Text(printable(self.current)))
        if self.t0 is None:
            grid.add_row("time", "setting up (the clock starts with the traffic)")
        else:
            spent = min(time.time() - self.t0, self.duration)
            filled = round(BAR * spent / self.duration) if self.duration else BAR
            left = f" {spent:5.1f} s of {self.duration:g} s, {self.duration - spent:.1f} s left"
            bar = Text.assemble(("━" * filled, "green"), ("━" * (BAR - filled), "grey37"), left)
            grid.add_row("time", bar)
        done = len(self.applied)
        if self.steps:
            upcoming = self.steps[done] if done < len(self.steps) else "none: every step applied"
            grid.add_row("timeline", f"{done}/{len(self.steps)} applied; next: {upcoming}")
        grid.add_row("captured", describe_counts(self.counter.counts()))
        return grid
