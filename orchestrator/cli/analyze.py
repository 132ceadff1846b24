"""`tcpscen analyze`: the verdict engine on any capture, without Docker."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from orchestrator.errors import CaptureFormatError
from orchestrator.verdict.analysis import Analysis
from orchestrator.verdict.contract import write_analysis_json
from orchestrator.verdict.explain import TOLERANCE, KernelPrediction, predict_connection
from orchestrator.verdict.parallel import analyze_shared, auto_processes
from orchestrator.verdict.pcapfile import TcpCapture, read_tcp
from orchestrator.verdict.settings import KernelSettings, parse_settings, settings_from_scenario
from orchestrator.verdict.summary import ConnectionSummary, Side

# Set once every capture is analysed and written: the console script may then end the process
# at once (see `entry`), without freeing the last analysis object by object.
finished = False
_last: list[Analysis] = []

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


def analyze(
    files: Annotated[list[Path], typer.Argument(help="pcap or pcapng files", show_default=False)],
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object per file on stdout")] = False,
    sysctl: Annotated[
        list[str] | None,
        typer.Option(
            "--sysctl", help="a host setting for the kernel model: net.ipv4.tcp_retries2=5 (repeat)"
        ),
    ] = None,
    sockopt: Annotated[
        list[str] | None,
        typer.Option("--sockopt", help="a socket option for the kernel model: TCP_KEEPIDLE=2 (repeat)"),
    ] = None,
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario", help="each host's sysctls and socket options, by address, from a scenario"
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=64,
            help="processes sharing each capture's connections "
            "(default: one per CPU, at most 4, for a capture over 16 MB; else 1)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Analyse captures as the verdict does: per connection, the handshake, the close, the
    retransmissions, keep-alives and zero windows (as Wireshark counts them), and the kernel
    model's prediction of any abort. Needs no Docker. Exit 0, or 2 for a file that is not a
    capture or a bad setting."""
    # The summaries and their JSON make no garbage cycles: the cyclic collector would only walk
    # them again and again (the analysis pauses it too).
    paused = gc.isenabled()
    gc.disable()
    try:
        _analyze(files, json_out, sysctl or [], sockopt or [], scenario, jobs)
    finally:
        if paused:
            gc.enable()


def _analyze(
    files: list[Path],
    json_out: bool,
    sysctl: list[str],
    sockopt: list[str],
    scenario: Path | None,
    jobs: int | None,
) -> None:
    settings = parse_settings(sysctl, sockopt)
    by_address: dict[str, KernelSettings] = {}
    if scenario is not None:
        for address, base in settings_from_scenario(scenario).items():
            by_address[address] = parse_settings(sysctl, sockopt, base)
    captures = _open_all(files)
    console = Console(highlight=False, soft_wrap=True)
    warn = Console(stderr=True, highlight=False)
    for path, capture in zip(files, captures, strict=True):
        analysis = analyze_shared(capture, jobs or auto_processes(capture))
        for problem in analysis.problems:
            warn.print(Text(f"warning: {problem}; what came before it was analysed", style="yellow"))
        predictions = _predict(analysis, settings, by_address)
        if json_out:
            write_analysis_json(sys.stdout, analysis, str(path), predictions)
        else:
            _print(console, str(path), analysis, predictions)
        _last[:] = [analysis]  # freed with the process, not here
    global finished  # noqa: PLW0603 - read by the console script's entry
    finished = True


def _open_all(files: list[Path]) -> list[TcpCapture]:
    """Every file checked before any is analysed; all the bad ones reported together."""
    captures: list[TcpCapture] = []
    problems: list[str] = []
    for path in files:
        try:
            captures.append(read_tcp(path))
        except CaptureFormatError as exc:
            problems.append(str(exc))
    if problems:
        raise CaptureFormatError("\n".join(problems))
    return captures


def _predict(
    analysis: Analysis, settings: KernelSettings, by_address: dict[str, KernelSettings]
) -> dict[int, list[KernelPrediction]]:
    end = max((c.last_frame.time for c in analysis.connections if c.last_frame), default=None)
    out: dict[int, list[KernelPrediction]] = {}
    for conn in analysis.connections:
        found = predict_connection(conn, _settings_for(conn, settings, by_address), analysis.icmp_errors, end)
        if found:
            out[conn.stream] = found
    return out


def _settings_for(
    conn: ConnectionSummary, settings: KernelSettings, by_address: dict[str, KernelSettings]
) -> Callable[[Side], KernelSettings]:
    def of(side: Side) -> KernelSettings:
        endpoint = conn.client if side == "client" else conn.server
        return by_address.get(endpoint.rsplit(":", 1)[0].strip("[]"), settings)

    return of


# ---------------------------------------------------------------------------------------------
# The readable summary


def _print(
    console: Console, file: str, analysis: Analysis, predictions: dict[int, list[KernelPrediction]]
) -> None:
    links = ", ".join(LINKTYPE_NAMES.get(t, f"link type {t}") for t in analysis.linktypes) or "no link type"
    n = len(analysis.connections)
    head = Text.assemble(
        (file, "bold"),
        f": {analysis.packets:,} frames, {analysis.tcp_packets:,} TCP segments, "
        f"{n:,} connection{'' if n == 1 else 's'} ({links})",
    )
    if analysis.truncated:
        head.append("  truncated: analysed up to the cut", style="yellow")
    console.print(head)
    for conn in analysis.connections:
        console.print(_connection(conn, predictions.get(conn.stream, [])))


def _connection(c: ConnectionSummary, predictions: list[KernelPrediction]) -> Text:
    t = Text()
    t.append(f"#{c.stream} {c.client} → {c.server}", style="bold")
    t.append(f"  {c.packets:,} packets, {c.duration_s:.3f} s\n")
    close = f"close {c.close}"
    if c.initiator is not None:
        close += f" (first FIN from {c.initiator}" + (
            f", {c.close_packets} packets)" if c.close_packets else ")"
        )
    if c.rst_from is not None:
        close += f", RST from {c.rst_from}"
    t.append(f"   handshake {c.handshake} · {close}\n")
    t.append(
        f"   client/server: retransmissions {c.retransmissions.client}/{c.retransmissions.server}"
        f" · keep-alives {c.keepalive_probes.client}/{c.keepalive_probes.server}"
        f" · zero windows {c.zero_window.client}/{c.zero_window.server}\n"
    )
    if c.backoff_gaps_s:
        t.append("   backoff gaps " + ", ".join(f"{g:.3f}" for g in c.backoff_gaps_s) + " s\n")
    if c.keepalive is not None:
        every = "" if c.keepalive.interval_s is None else f", then every {c.keepalive.interval_s:.3f} s"
        t.append(
            f"   keep-alive probes: the first after {c.keepalive.first_after_idle_s:.3f} s idle{every}\n"
        )
    for note in c.notes:
        t.append(f"   · {note}\n", style="dim")
    for p in predictions:
        t.append_text(_prediction(p))
    t.rstrip()
    return t


def _prediction(p: KernelPrediction) -> Text:
    t = Text(f"   model: {p.kind} by {p.side}, {p.predicted_s:g} s after {p.start}\n")
    t.append(f"          {p.basis}\n")
    if p.observed_s is None:
        t.append(f"     observed: none ({p.observed})\n", style="yellow")
    else:
        ok = bool(p.within_tolerance)
        verdict = f"within {TOLERANCE:.0%}" if ok else f"outside {TOLERANCE:.0%}"
        t.append(f"     observed: {p.observed_s:.3f} s ({p.deviation:+.1%}, ", style=None)
        t.append(verdict, style="green" if ok else "bold red")
        t.append(f"): {p.observed}\n")
    for why in p.explanations:
        t.append(f"     ↳ {why}\n", style="italic")
    return t
