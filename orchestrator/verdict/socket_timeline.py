"""The kernel's own view over time: each host's socket samples as a typed timeline.

`HOST.sockets.jsonl` is written once, at the end of a run, from the sampler's files: one line
per sample (`"kind": "sample"`: its time, boot, whether ss answered, how many sockets) followed
by one line per socket in it (`"kind": "socket"`: the fields of `ss_output.SocketSample`). Its
line numbers are the evidence checks cite ("client.sockets.jsonl:412").

A `SocketSeries` is one socket's life in one kernel: its samples in order, and how it ended:
still there at the last sample, gone at a sample of the same kernel (closed, aborted, reset), or
gone with its kernel (the host powered off).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from orchestrator.verdict.ss_output import SocketSample, read_sample_file

GONE = "none"  # the state of a socket the kernel no longer has (as `socket_at_end` says it)


def timeline_name(host: str) -> str:
    return f"{host}.sockets.jsonl"


@dataclass(frozen=True, slots=True)
class Tick:
    """One sample: when, which boot of the host, whether ss answered, its line in the file."""

    t: float
    boot: int
    ok: bool
    line: int


@dataclass(frozen=True, slots=True)
class Transition:
    """The socket entered `state` at sample time `t` (`GONE`: the kernel no longer had it)."""

    t: float
    state: str
    line: int  # the line that shows it: the socket's, or (gone) the sample's without it
    sample: SocketSample | None = None
    with_kernel: bool = False  # gone because its kernel went (the host powered off)


@dataclass
class SocketSeries:
    host: str
    local: str
    peer: str
    boot: int
    samples: list[SocketSample] = field(default_factory=list)
    gone: Tick | None = None  # the first sample of the same kernel without this socket
    kernel_gone: Tick | None = None  # the first sample of a later boot (the host was power-cycled)

    @property
    def first(self) -> SocketSample:
        return self.samples[0]

    @property
    def last(self) -> SocketSample:
        return self.samples[-1]

    @property
    def ended(self) -> Tick | None:
        """The first sample that no longer shows the socket, whatever the reason."""
        return self.gone or self.kernel_gone

    def transitions(self) -> list[Transition]:
        out: list[Transition] = []
        for s in self.samples:
            if not out or out[-1].state != s.state:
                out.append(Transition(s.t, s.state, s.line, s))
        if (end := self.ended) is not None:
            out.append(Transition(end.t, GONE, end.line, with_kernel=self.gone is None))
        return out

    def max_retrans(self) -> SocketSample:
        """The sample with the kernel's highest retransmission count (the first of equals)."""
        return max(self.samples, key=lambda s: s.retrans_total)

    def timers(self) -> dict[str, SocketSample]:
        """Each timer kind the samples showed, with its first sample."""
        out: dict[str, SocketSample] = {}
        for s in self.samples:
            out.setdefault(s.timer, s)
        return out


@dataclass
class SocketTimeline:
    host: str
    ticks: list[Tick]
    sockets: list[SocketSample]
    file: str = ""
    _series: list[SocketSeries] | None = field(default=None, repr=False)
    # The host was off when the observation ended (powered off, not on again): its sampler
    # went with its kernel, so what the last sample listed was not there at the end.
    powered_off: bool = False

    @property
    def interval_s(self) -> float | None:
        """The median time between samples of one kernel."""
        gaps = [b.t - a.t for a, b in zip(self.ticks, self.ticks[1:], strict=False) if a.boot == b.boot]
        return statistics.median(gaps) if gaps else None

    def until(self, t_end: float | None) -> SocketTimeline:
        """Only the samples taken by `t_end` (teardown comes after the observation)."""
        if t_end is None:
            return self
        return SocketTimeline(
            self.host,
            [k for k in self.ticks if k.t <= t_end],
            [s for s in self.sockets if s.t <= t_end],
            self.file,
        )

    def series(self) -> list[SocketSeries]:
        if self._series is None:
            self._series = _build_series(self.host, self.ticks, self.sockets)
        return self._series

    def of(self, local: str, peer: str) -> list[SocketSeries]:
        """The sockets local -> peer, in time order (more than one if the 4-tuple was reused)."""
        return [s for s in self.series() if s.local == local and s.peer == peer]

    def listeners(self) -> list[SocketSeries]:
        return [s for s in self.series() if s.first.listening]

    def last_tick(self) -> Tick | None:
        return self.ticks[-1] if self.ticks else None


def _build_series(host: str, ticks: list[Tick], sockets: list[SocketSample]) -> list[SocketSeries]:
    """Group samples by (boot, local, peer); the same 4-tuple back after a sample without it is a
    new socket (a port reused)."""
    ok_ticks = [k for k in ticks if k.ok]
    open_: dict[tuple[int, str, str], SocketSeries] = {}
    done: list[SocketSeries] = []
    by_time: dict[float, list[SocketSample]] = {}
    for s in sockets:
        by_time.setdefault(s.t, []).append(s)
    for tick in ok_ticks:
        present = by_time.get(tick.t, [])
        seen: set[tuple[int, str, str]] = set()
        for s in present:
            key = (s.boot, s.local, s.peer)
            if key in seen:
                continue  # two sockets with one 4-tuple in one sample (a listener's twins): keep the first
            seen.add(key)
            series = open_.get(key)
            if series is None:
                series = open_[key] = SocketSeries(host, s.local, s.peer, s.boot)
            series.samples.append(s)
        for key, series in list(open_.items()):
            if key in seen:
                continue
            if key[0] == tick.boot:
                series.gone = tick
            else:
                series.kernel_gone = tick
            done.append(open_.pop(key))
    done.extend(open_.values())
    return sorted(done, key=lambda s: (s.first.t, s.local, s.peer))


def timeline_text(run_dir: Path, files: Iterable[str]) -> str | None:
    """HOST.sockets.jsonl's text, from the sampler's files (in boot order); None if there were
    none. (The run writes it, through its run directory's safe writer.)"""
    names = [f for f in files if (run_dir / f).exists()]
    if not names:
        return None
    out: list[str] = []
    for name in names:
        for sample in read_sample_file((run_dir / name).read_text(errors="replace")):
            head = {"kind": "sample", "t": sample.t, "boot": sample.boot, "ok": sample.ok}
            head |= {"took_s": round(sample.took_s, 6), "sockets": len(sample.sockets)}
            out.append(json.dumps(head))
            for s in sample.sockets:
                row = {k: v for k, v in asdict(s).items() if k != "line"}
                out.append(json.dumps({"kind": "socket", **row}))
    return "\n".join(out) + "\n" if out else ""


_FIELDS = {f.name for f in fields(SocketSample)} - {"line"}


def load_timeline(path: Path, host: str) -> SocketTimeline:
    """A HOST.sockets.jsonl back as a timeline, each sample knowing its line. Lines it cannot
    read are skipped (a newer version's kinds, a file cut short)."""
    ticks: list[Tick] = []
    sockets: list[SocketSample] = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if not isinstance(raw, dict):
            continue
        try:
            if raw.get("kind") == "sample":
                ticks.append(Tick(float(raw["t"]), int(raw["boot"]), bool(raw["ok"]), n))
            elif raw.get("kind") == "socket":
                sockets.append(SocketSample(**{k: v for k, v in raw.items() if k in _FIELDS}, line=n))
        except (KeyError, TypeError, ValueError):
            continue
    # In time order whatever the file's (stable: a sample's sockets keep ss's order).
    ticks.sort(key=lambda k: k.t)
    sockets.sort(key=lambda s: s.t)
    return SocketTimeline(host, ticks, sockets, path.name)


def load_timelines(run_dir: Path, hosts: Iterable[str]) -> dict[str, SocketTimeline]:
    """Each host's timeline, for the hosts that have one."""
    out: dict[str, SocketTimeline] = {}
    for host in hosts:
        path = run_dir / timeline_name(host)
        if path.exists():
            out[host] = load_timeline(path, host)
    return out
