"""Live progress: packets counted from the growing captures; a rich panel on a terminal, plain
lines without one; the panel goes when the captures close, leaving the counts."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

from rich.console import Console

from orchestrator.report.console import ConsoleObserver
from orchestrator.report.progress import CaptureCounter
from orchestrator.run.records import AgentEvent, FaultRecord
from tests.helpers.pcaps import Conv
from tests.helpers.reportrun import scenario


def capture_bytes(tmp_path: Path, n: int, fmt: str = "pcap") -> bytes:
    c = Conv()
    c.handshake()
    for _ in range(n - 3):
        c.data("c", 10)
    return c.write(tmp_path / f"src.{fmt}", link="sll2", fmt=fmt).read_bytes()


def test_packets_are_counted_as_the_capture_grows(tmp_path: Path) -> None:
    data = capture_bytes(tmp_path, 6)
    run = tmp_path / "run"
    run.mkdir()
    counter = CaptureCounter(run)
    assert counter.counts() == {}
    pcap = run / "client.pcap"
    pcap.write_bytes(data[:10])  # tcpdump has not written the whole file header yet
    assert counter.counts() == {"client": 0}
    first_len = 16 + struct.unpack_from("<I", data, 24 + 8)[0]
    cut = 24 + first_len + 30  # the header, then one record and a bit of the next
    pcap.write_bytes(data[:cut])
    first = counter.counts()["client"]
    pcap.write_bytes(data)
    assert (first, counter.counts()) == (1, {"client": 6})
    (run / "server.pcap").write_bytes(data)
    (run / "server.boot2.pcap").write_bytes(data[: len(data) // 2])
    counts = counter.counts()
    assert counts["client"] == 6 and 6 < counts["server"] < 12


def test_pcapng_captures_are_counted_too(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "client.pcap").write_bytes(capture_bytes(tmp_path, 5, "pcapng"))
    assert CaptureCounter(run).counts() == {"client": 5}


def test_without_a_terminal_progress_is_plain_lines(tmp_path: Path) -> None:
    out = io.StringIO()
    observer = ConsoleObserver(Console(file=out, width=120), live=None)
    assert not observer.use_live
    drive(observer, tmp_path)
    text = out.getvalue()
    assert "\x1b[" not in text  # no cursor movement, no colour: a CI log
    lines = [line.split(maxsplit=1)[1] for line in text.splitlines()]
    assert lines == [
        "· traffic started",
        "⚡ server network cut",
        "▸ client: error errno=ETIMEDOUT",
        "· closing captures",
        "· captured: client 6 packets",
        "· judging the packets",
    ]


def test_on_a_terminal_a_live_panel_comes_and_goes(tmp_path: Path) -> None:
    out = io.StringIO()
    observer = ConsoleObserver(Console(file=out, width=120, force_terminal=True), live=None)
    assert observer.use_live
    drive(observer, tmp_path, pause=0.4)  # long enough for the panel to refresh
    text = out.getvalue()
    assert "scenario" in text and "power_cut" in text and "s left" in text  # the panel was drawn
    assert "1/1 applied" in text and "client 6 packets" in text
    assert ConsoleObserver.active is None and observer.state is None
    assert text.rstrip().endswith("judging the packets\x1b[0m")  # the panel is gone from the end


def drive(observer: ConsoleObserver, tmp_path: Path, pause: float = 0.0) -> None:
    run = tmp_path / "run"
    run.mkdir()
    observer.started(run, scenario())
    (run / "client.pcap").write_bytes(capture_bytes(tmp_path, 6))
    observer.step("traffic started")
    observer.fault(FaultRecord(0, "disconnect", "server", time.time(), "server network cut"))
    observer.event(AgentEvent("client", "sent", time.time()))  # quiet unless verbose
    observer.event(AgentEvent("client", "error", time.time(), errno="ETIMEDOUT"))
    time.sleep(pause)
    observer.step("closing captures")
    observer.step("judging the packets")
