"""What the live display shows while a scenario runs: the packets each side has captured so far,
and the panel itself (step, time left, timeline, packets).

The captures grow in the run directory as tcpdump writes them (-U: one write per packet), so
counting is reading the new bytes since the last look and walking the record headers, never the
packets themselves: a few kilobytes per refresh.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from orchestrator.report.terminal import printable

_PCAP_MAGICS = {0xA1B2C3D4: 16, 0xA1B23C4D: 16, 0xA1B2CD34: 24}  # magic -> record header length
_PCAPNG = 0x0A0D0D0A
BAR = 40  # characters of the time bar


class _Tail:
    """One growing capture file: its records counted up to `offset`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.count = 0
        self.endian = ""  # unknown until the file header is there
        self.rec_len = 0
        self.pcapng = False

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return self.count
        pos = 0
        if not self.endian:
            pos = self._header(data)
            if not self.endian:
                return self.count
        size = struct.Struct(self.endian + "I")
        while True:
            if self.pcapng:
                if len(data) - pos < 8:
                    break
                btype, blen = struct.unpack_from(self.endian + "II", data, pos)
                if blen < 12 or len(data) - pos < blen:
                    break
                self.count += btype in (2, 3, 6)
                pos += blen
            else:
                if len(data) - pos < self.rec_len:
                    break
                (cap,) = size.unpack_from(data, pos + 8)
                if len(data) - pos < self.rec_len + cap:
                    break
                self.count += 1
                pos += self.rec_len + cap
        self.offset += pos
        return self.count

    def _header(self, data: bytes) -> int:
        if len(data) < 24:
            return 0
        for endian in "<>":
            (magic,) = struct.unpack_from(endian + "I", data)
            if magic in _PCAP_MAGICS:
                self.endian, self.rec_len = endian, _PCAP_MAGICS[magic]
                return 24
            if magic == _PCAPNG:
                self.endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
                self.pcapng = True
                return 0
        self.endian = "<"  # not a capture we know: count nothing, but stop looking
        self.rec_len = 1 << 30
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
