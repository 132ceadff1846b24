"""A program of the user's as a host's app. Its container joins the host's namespace exactly as
the agent's does (`network_mode=container:<host>`), so the capture sees its first SYN; its
stdout and stderr are kept with the engine's timestamps; its syscalls are traced by strace inside
its own container (as its parent, so no CAP_SYS_PTRACE is needed) and read into events as they
are written; its exit is an event too, with its code and time.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from orchestrator.backend.docker.engine import ENGINE_ERRORS
from orchestrator.backend.docker.readiness import Readiness, Started
from orchestrator.capture.tcpdump import RUN_DIR_MOUNT
from orchestrator.programs.strace import STRACE_ARGS, TraceReader

OBSERVER_PATH = "/.tcpscen-observe.sh"
# Every signal a shell can trap, passed on to the program: the kernel gives PID 1 only the
# signals it handles (SIGKILL and SIGSTOP aside), so an untrapped one was lost. Measured: a
# `kill` with SIGABRT left python3 -m http.server serving, its connection ESTAB. SIGSTOP cannot
# be trapped: `forward` (below), exec'd in the container, stops the program itself.
FORWARDED = [
    "TERM",
    "INT",
    "HUP",
    "QUIT",
    "ILL",
    "TRAP",
    "ABRT",
    "BUS",
    "FPE",
    "USR1",
    "SEGV",
    "USR2",
    "PIPE",
    "ALRM",
    "CONT",
    "TSTP",
    "TTIN",
    "TTOU",
    "URG",
    "XCPU",
    "XFSZ",
    "VTALRM",
    "PROF",
    "WINCH",
    "IO",
    "PWR",
    "SYS",
]
# PID 1 of an observed app: it runs the program under strace as its child and stays, so the
# signals the engine sends (a `kill` with SIGTERM, `docker stop`) go to the program itself (strace
# would instead detach and end the container at once), and the program's exit status is ours.
OBSERVER_SCRIPT = f"""#!/bin/sh
signal_children() {{  # PID SIG: the program is strace's child
  for child in $(cat /proc/$1/task/*/children 2>/dev/null); do kill -s "$2" "$child" 2>/dev/null; done
}}
if [ "$1" = forward ]; then  # exec'd beside PID 1 (`forward SIG [PID]`): a signal PID 1 cannot trap
  for tracer in $(cat /proc/${{3:-1}}/task/*/children 2>/dev/null); do signal_children "$tracer" "$2"; done
  exit 0
fi
mode=$1; out=$2; shift 2
if ! command -v strace >/dev/null 2>&1; then
  if [ "$mode" = required ]; then
    echo "tcpscen: no strace in this image (observe: syscalls)" >&2; exit 127
  fi
  echo "# no strace in this image: the program runs untraced" > "$out"
  exec "$@"
fi
# A background job of a non-interactive shell starts with SIGINT and SIGQUIT ignored (POSIX), and
# so would the program (measured: a stop with stop_signal SIGINT reached it and did nothing, then
# SIGKILL); env resets them to the default where it can.
reset=; if env --default-signal=INT true 2>/dev/null; then reset="env --default-signal=INT,QUIT"; fi
$reset strace {shlex.join(STRACE_ARGS)} -o "$out" -- "$@" &
tracer=$!
for sig in {" ".join(FORWARDED)}; do trap "signal_children $tracer $sig" "$sig"; done
while :; do
  wait $tracer; rc=$?
  kill -0 $tracer 2>/dev/null || exit $rc
done
"""
SIGNALS = {9: "SIGKILL", 15: "SIGTERM", 2: "SIGINT", 1: "SIGHUP", 3: "SIGQUIT", 6: "SIGABRT", 13: "SIGPIPE"}


@dataclass(frozen=True)
class ProgramRun:
    """What the engine runs for one host: resolved from a `program:` or a Compose service."""

    image: str
    argv: list[str] | None  # entrypoint + command; None: the image's own
    entrypoint: list[str] | None
    command: list[str] | None
    environment: dict[str, str]
    working_dir: str | None
    user: str | None
    observe: str  # "auto" (trace, untraced if the image has no strace), "required" or "none"
    ready: Readiness = field(default_factory=Started)
    healthcheck: dict[str, Any] | None = None
    source: str = ""  # "program" or "compose service redis", for messages
    stop_signal: str | None = None  # what `docker stop` sends (the container's StopSignal)
    stop_grace_s: float | None = None  # a stop step's grace when the step gives none


@dataclass
class ProgramApp:
    """One start of the program (a restart or a power-on makes another): its container and followers."""

    container: Container
    host: str
    trace: Path | None
    on_line: Callable[[str, str], None]
    output: list[tuple[str, str, str]] = field(default_factory=list)  # (timestamp, stream, line)
    threads: list[threading.Thread] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)
    exit_code: int | None = None

    def follow(self) -> None:
        for stream in ("stdout", "stderr"):
            self._spawn(self._follow_output, stream)
        if self.trace is not None:
            self._spawn(self._follow_trace)

    def running(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def join(self, timeout_s: float) -> None:
        self.stopped.set()
        for t in self.threads:
            t.join(timeout_s)

    def log_text(self) -> str:
        return "".join(f"{t} {stream}: {line}\n" for t, stream, line in sorted(self.output))

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"app-{self.host}")
        thread.start()
        self.threads.append(thread)

    def _follow_output(self, stream: str) -> None:
        buffer = b""
        with contextlib.suppress(*ENGINE_ERRORS):
            chunks = self.container.logs(
                stream=True,
                follow=True,
                timestamps=True,
                stdout=stream == "stdout",
                stderr=stream == "stderr",
            )
            for chunk in chunks:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                self._keep(stream, lines)
        self._keep(stream, [buffer] if buffer else [])
        if stream == "stdout":
            self._report_exit()

    def _keep(self, stream: str, lines: list[bytes]) -> None:
        for raw in lines:
            stamp, _, text = raw.decode(errors="replace").partition(" ")
            self.output.append((stamp, stream, text.rstrip("\r")))

    def _report_exit(self) -> None:
        """The exit code and the engine's own time of the exit; nothing if the container is gone
        (a power-off removed it: the program did not exit, the machine died)."""
        try:
            code = int(self.container.wait(timeout=10)["StatusCode"])
            self.container.reload()
            finished = _parse_time(self.container.attrs["State"]["FinishedAt"])
        except (*ENGINE_ERRORS, KeyError, ValueError):
            return
        self.exit_code = code
        event: dict[str, Any] = {
            "t": finished or time.time(),
            "host": self.host,
            "event": "exit",
            "code": code,
        }
        if code > 128 and code - 128 in SIGNALS:
            event["signal"] = SIGNALS[code - 128]
        event["source"] = "engine"
        # The trace's last lines (the program's last syscalls) come before its exit.
        time.sleep(0.2)
        self.on_line(self.host, json.dumps(event))

    def _follow_trace(self) -> None:
        """Read the trace as strace writes it; stop once the program has exited and all is read."""
        assert self.trace is not None
        reader = TraceReader(self.host, self.trace.name)
        offset, partial, idle_after_exit = 0, b"", 0
        while idle_after_exit < 3:
            try:
                with self.trace.open("rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                data = b""
            offset += len(data)
            *lines, partial = (partial + data).split(b"\n")
            for line in lines:
                for event in reader.feed(line.decode(errors="replace")):
                    self.on_line(self.host, json.dumps(event))
            if not data and (self.stopped.is_set() or not self._output_open()):
                idle_after_exit += 1
            time.sleep(0.05)

    def _output_open(self) -> bool:
        return any(t.is_alive() for t in self.threads[:2])


def start_program(
    client: docker.DockerClient,
    run: ProgramRun,
    host: Container,
    *,
    name: str,
    host_name: str,
    labels: dict[str, str],
    new_file: Callable[[str, int, int], Path],
    trace_name: str,
    limits: dict[str, Any],
    on_line: Callable[[str, str], None],
) -> ProgramApp:
    """Create and start the program in `host`'s namespace; its followers run from here on.
    `new_file(name, uid, gid)` makes the run directory's one file the app may write, its trace."""
    observed = run.observe != "none"
    trace: Path | None = None
    kwargs: dict[str, Any] = {
        "name": name,
        "network_mode": f"container:{host.id}",
        "cap_drop": ["ALL"],  # no fault needs a capability in the app itself
        "environment": run.environment,
        "labels": labels,
        **limits,  # memory and pids: a runaway program stops at its container's limit
    }
    if run.user:
        kwargs["user"] = run.user
    if run.working_dir:
        kwargs["working_dir"] = run.working_dir
    if run.healthcheck:
        kwargs["healthcheck"] = run.healthcheck
    if run.stop_signal:
        kwargs["stop_signal"] = run.stop_signal  # the observer's shell traps it and passes it on
    if not observed:
        if run.entrypoint is not None:
            kwargs["entrypoint"] = run.entrypoint
        container = client.containers.create(run.image, run.command, **kwargs)
    else:
        # Only the trace is mounted, made beforehand and given to the program's user: nothing
        # else of the run directory is the program's to write (issue #11's rule for captures).
        trace = new_file(trace_name, *user_ids(client, run))
        argv = run.argv if run.argv is not None else image_argv(client, run)
        mode = "required" if run.observe == "syscalls" else "auto"
        kwargs["entrypoint"] = ["/bin/sh", OBSERVER_PATH]
        kwargs["volumes"] = {str(trace): {"bind": f"{RUN_DIR_MOUNT}/{trace_name}", "mode": "rw"}}
        container = client.containers.create(
            run.image, [mode, f"{RUN_DIR_MOUNT}/{trace_name}", *argv], **kwargs
        )
        container.put_archive("/", _observer_tar())
    app = ProgramApp(container, host_name, trace, on_line)
    container.start()
    app.follow()
    return app


def image_argv(client: docker.DockerClient, run: ProgramRun) -> list[str]:
    """What the engine would run: the entrypoint (given or the image's) and the command (given,
    or the image's unless the entrypoint was given: Docker drops it then)."""
    config = client.images.get(run.image).attrs.get("Config") or {}
    entrypoint = run.entrypoint if run.entrypoint is not None else list(config.get("Entrypoint") or [])
    if run.command is not None:
        command = run.command
    else:
        command = [] if run.entrypoint is not None else list(config.get("Cmd") or [])
    return [*entrypoint, *command]


def user_ids(client: docker.DockerClient, run: ProgramRun) -> tuple[int, int]:
    """The uid and gid the program (and its tracer) run as: numeric as given, or a name (or the
    image's own user) resolved in the image itself."""
    user = run.user or str((client.images.get(run.image).attrs.get("Config") or {}).get("User") or "")
    name, _, group = user.partition(":")
    if not name:
        return 0, 0
    if name.isdigit() and (not group or group.isdigit()):
        return int(name), int(group or name)
    out = client.containers.run(
        run.image,
        ["sh", "-c", f"id -u {shlex.quote(name)}; id -g {shlex.quote(name)}"],
        entrypoint=[],
        network_mode="none",
        cap_drop=["ALL"],
        remove=True,
    )
    uid, gid = (int(x) for x in out.decode().split()[:2])
    return uid, (int(group) if group.isdigit() else gid)


def _observer_tar() -> bytes:
    data = OBSERVER_SCRIPT.encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(OBSERVER_PATH.lstrip("/"))
        info.size, info.mode, info.mtime = len(data), 0o755, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _parse_time(text: str) -> float | None:
    """The engine's RFC 3339 time with nanoseconds, as a wall-clock float (None if unset)."""
    if not text or text.startswith("0001-"):
        return None
    head, _, rest = text.partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())
    zone = rest[len(fraction) :] or "Z"
    stamp = datetime.fromisoformat(head + (zone.replace("Z", "+00:00")))
    return stamp.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)
