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
from orchestrator.kernel.predict import KernelPrediction, capture_end, predict_connection
from orchestrator.kernel.settings import (
    KernelSettings,
    parse_settings,
    run_addresses,
    settings_by_host,
    settings_from_scenario,
)
from orchestrator.pcap.reader import TcpCapture, read_tcp
from orchestrator.report.analysis_text import TextConnections, write_rendered_summary, write_summary
from orchestrator.report.terminal import printable
from orchestrator.tcp.analysis import Analysis, analyze_capture
from orchestrator.tcp.connection import ConnectionSummary, Side
from orchestrator.tcp.contract import JsonConnections, write_analysis_json, write_rendered_json
from orchestrator.tcp.sizing import auto_processes

# Set once every capture is analysed and written: the console script may then end the process
# at once (see `entry`), without freeing the last analysis object by object.
finished = False
# Set by the console script, which then ends the process as soon as the command has finished.
ends_process = False
_last: list[Analysis] = []


def analyze(
    files: Annotated[list[Path], typer.Argument(help="pcap or pcapng files", show_default=False)],
    json_out: Annotated[bool, typer.Option("--json", help="one JSON object per file on stdout")] = False,
    sysctl: Annotated[
        list[str] | None,
        typer.Option(
            "--sysctl",
            help="a host setting for the kernel model (repeat): net.ipv4.tcp_retries2=5; "
            "tcp_retries2, tcp_syn_retries, tcp_syn_linear_timeouts (0 before kernel 6.5), "
            "tcp_synack_retries and tcp_keepalive_probes are counts; tcp_keepalive_time and "
            "tcp_keepalive_intvl are seconds, tcp_rto_max_ms (kernels from 6.15) milliseconds, as in "
            "/proc/sys; tcp_thin_linear_timeouts 0 or 1; tcp_early_retrans 0 to 4 (tail-loss "
            "probes with 3 or 4)",
        ),
    ] = None,
    sockopt: Annotated[
        list[str] | None,
        typer.Option(
            "--sockopt",
            help="a socket option for the kernel model (repeat), in setsockopt's own unit: "
            "TCP_USER_TIMEOUT in milliseconds (TCP_USER_TIMEOUT=4000 is 4 s), TCP_KEEPIDLE and "
            "TCP_KEEPINTVL in seconds, TCP_KEEPCNT and TCP_SYNCNT counts, TCP_RTO_MAX_MS in "
            "milliseconds (kernels from 6.15), TCP_THIN_LINEAR_TIMEOUTS 0 or 1; or give the unit: "
            "TCP_USER_TIMEOUT=4s, TCP_KEEPIDLE=2s",
        ),
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
        # The first collection after the pause walks every object made during it (0.04 s after
        # 9,547 connections): not worth it when the process ends now anyway.
        if paused and not (finished and ends_process):
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
    captures = _open_all(files)
    console = Console(highlight=False, soft_wrap=True)
    warn = Console(stderr=True, highlight=False)
    for path, capture in zip(files, captures, strict=True):
        by_address: dict[str, KernelSettings] = {}
        if scenario is not None:
            for address, base in scenario_settings(scenario, path, warn).items():
                by_address[address] = parse_settings(sysctl, sockopt, base)
        processes = jobs or auto_processes(capture)
        if processes > 1 and (json_out or not console.is_terminal):
            # Each process renders its own connections: only text comes back.
            from orchestrator.tcp.parallel import analyze_rendered  # noqa: PLC0415 - see _analysis

            def settings_for(
                c: ConnectionSummary, known: dict[str, KernelSettings] = by_address
            ) -> Callable[[Side], KernelSettings]:
                return _settings_for(c, settings, known)

            renderer = JsonConnections(settings_for) if json_out else TextConnections(settings_for)
            # Encoded as the output is, where rendered (`EncodedBody` checks it is the same).
            encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
            errors = getattr(sys.stdout, "errors", None) or "strict"
            rendered = analyze_rendered(capture, processes, renderer, encoding, errors)
            _warn(warn, rendered.analysis)
            if json_out:
                write_rendered_json(sys.stdout, rendered.analysis, rendered.body, str(path), rendered.totals)
            else:
                write_rendered_summary(
                    sys.stdout, printable(str(path)), rendered.analysis, rendered.body, rendered.totals
                )
            continue
        analysis = _analysis(capture, processes)
        _warn(warn, analysis)
        predictions = _predict(analysis, settings, by_address)
        if json_out:
            write_analysis_json(sys.stdout, analysis, str(path), predictions)
        else:
            write_summary(sys.stdout, console, printable(str(path)), analysis, predictions)
        _last[:] = [analysis]  # freed with the process, not here
    global finished  # noqa: PLW0603 - read by the console script's entry
    finished = True


def _analysis(capture: TcpCapture, processes: int) -> Analysis:
    """The capture's analysis in `processes` processes. The process machinery (and numpy) is
    imported only for more than one: a small capture's run never pays for it."""
    if processes <= 1:
        return analyze_capture(capture)
    from orchestrator.tcp.parallel import analyze_shared  # noqa: PLC0415

    return analyze_shared(capture, processes)


def _warn(warn: Console, analysis: Analysis) -> None:
    for i, problem in enumerate(analysis.problems):
        # A truncated file's problem comes first (`analysis_of`): the others are not a cut.
        after = "; what came before it was analysed" if analysis.truncated and i == 0 else ""
        warn.print(Text(f"warning: {printable(str(problem))}{after}", style="yellow"))


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


def scenario_settings(scenario: Path, capture: Path, warn: Console) -> dict[str, KernelSettings]:
    """Each host's settings by address. A run may have been moved to a free subnet (-j): when
    the capture sits in its run directory, the run's own record (report-input.json) gives the
    addresses each host really had; otherwise a scenario whose addresses the capture never
    shows is said to be unused, not silently dropped."""
    by_name = settings_by_host(scenario)
    moved = run_addresses(capture.parent)
    if moved:
        return {moved[name]: s for name, s in by_name.items() if name in moved}
    by_address = settings_from_scenario(scenario)
    if not _mentions(capture, by_address):
        warn.print(
            f"warning: {capture}: none of the addresses of {scenario} ({', '.join(sorted(by_address))}) "
            "is in this capture, so its settings are not used (a run moved to another subnet? analyze "
            "the capture inside its run directory, whose report-input.json has the real addresses)",
            markup=False,
        )
    return by_address


def _predict(
    analysis: Analysis, settings: KernelSettings, by_address: dict[str, KernelSettings]
) -> dict[int, list[KernelPrediction]]:
    end = capture_end(analysis.connections)
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


def _mentions(capture: Path, addresses: dict[str, KernelSettings]) -> bool:
    """Whether any of the addresses sent a segment in the capture's first 10,000."""
    wanted = set(addresses)
    for n, p in enumerate(read_tcp(capture)):
        if p.src in wanted or p.dst in wanted:
            return True
        if n >= 10_000:
            return False
    return False
