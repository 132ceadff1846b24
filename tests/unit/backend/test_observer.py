"""The PID 1 of a traced program (backend/docker/app.py's OBSERVER_SCRIPT), run here as a real
process: the program runs under strace, the signals sent to PID 1 reach the program itself (not
strace), and the program's exit status is the wrapper's."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backend.docker.app import OBSERVER_SCRIPT

PROGRAM = """\
import signal, socket, sys, time
def stop(signum, frame):
    print("got", signal.Signals(signum).name, flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
socket.socket().close()
print("ready", flush=True)
time.sleep(30)
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "observe.sh"
    path.write_text(OBSERVER_SCRIPT)
    return path


def start(
    script: Path, mode: str, trace: Path, *argv: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    # As a container's PID 1 starts: every signal at its default (env execs the shell, same
    # pid). A test run under nohup has SIGHUP ignored, and a shell cannot trap a signal ignored
    # on entry (POSIX): the wrapper inherited it ignored and the SIGHUP case waited out its timeout.
    return subprocess.Popen(
        ["/usr/bin/env", "--default-signal", "/bin/sh", str(script), mode, str(trace), *argv],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.skipif(
    shutil.which("strace") is None, reason="needs strace on this machine (setup-host installs it)"
)
def test_sigterm_reaches_the_program_and_its_exit_status_is_kept(script: Path, tmp_path: Path) -> None:
    trace = tmp_path / "t.txt"
    proc = start(script, "auto", trace, sys.executable, "-c", PROGRAM)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)  # the wrapper's traps are set right after strace starts
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 3, "the program handled SIGTERM and exited 3; strace did not cut it short"
    assert proc.stdout.read().strip() == "got SIGTERM"
    text = trace.read_text()
    assert "socket(AF_INET, SOCK_STREAM" in text and "+++ exited with 3 +++" in text


def test_exit_codes_pass_through_and_no_strace_means_untraced(script: Path, tmp_path: Path) -> None:
    trace = tmp_path / "t.txt"
    no_strace = {"PATH": str(tmp_path)}  # sh finds no strace (nor anything else) here
    proc = start(script, "auto", trace, sys.executable, "-c", "raise SystemExit(5)", env=no_strace)
    assert proc.wait(timeout=10) == 5
    assert trace.read_text().startswith("# no strace in this image")
    proc = start(script, "required", trace, sys.executable, "-c", "pass", env=no_strace)
    assert proc.wait(timeout=10) == 127, "observe: syscalls insists on strace"


UNHANDLED = """\
import socket, time
socket.socket().close()
print("ready", flush=True)
time.sleep(20)
"""


def _ready(script: Path, trace: Path) -> subprocess.Popen[str]:
    proc = start(script, "auto", trace, sys.executable, "-c", UNHANDLED)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    # The wrapper sets its traps after starting strace: wait until it catches the last one
    # (SIGSYS) rather than for a fixed time, which a loaded machine can outlast.
    deadline = time.monotonic() + 10
    while not _catches(proc.pid, signal.SIGSYS) and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc


def _catches(pid: int, sig: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


@pytest.mark.skipif(
    shutil.which("strace") is None, reason="needs strace on this machine (setup-host installs it)"
)
@pytest.mark.parametrize("sig", [signal.SIGABRT, signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM])
def test_a_signal_the_program_does_not_handle_ends_it_as_its_default_would(
    script: Path, tmp_path: Path, sig: int
) -> None:
    """In the container the wrapper is PID 1, which the kernel gives no signal it has not
    trapped: measured, `kill` with SIGABRT left the program serving. Here (not PID 1) an
    untrapped signal killed the wrapper and left the program running, orphaned."""
    trace = tmp_path / "t.txt"
    proc = _ready(script, trace)
    try:
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 128 + sig, "the program died of the signal; the wrapper says so"
        assert f"+++ killed by {signal.Signals(sig).name}" in trace.read_text()
    finally:
        proc.kill()


@pytest.mark.skipif(
    shutil.which("strace") is None, reason="needs strace on this machine (setup-host installs it)"
)
def test_forward_stops_and_continues_the_program_itself(script: Path, tmp_path: Path) -> None:
    """SIGSTOP cannot be trapped: sent to PID 1 it stopped the wrapper, and the program went on
    (measured: it kept echoing). `forward STOP`, exec'd beside PID 1, stops the program."""
    trace = tmp_path / "t.txt"
    proc = _ready(script, trace)
    try:
        tracer = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0]
        program = Path(f"/proc/{tracer}/task/{tracer}/children").read_text().split()[0]
        for sig, state in (("STOP", "t"), ("CONT", "S")):
            subprocess.run(["/bin/sh", str(script), "forward", sig, str(proc.pid)], check=True, timeout=10)
            time.sleep(0.3)
            stat = Path(f"/proc/{program}/stat").read_text().rpartition(")")[2].split()
            assert stat[0] in (state, state.upper()), (sig, stat[0])  # t: stopped under a tracer
        assert proc.poll() is None, "the wrapper itself was never stopped nor ended"
    finally:
        proc.kill()


DISPOSITIONS = """\
import signal
interrupt = signal.getsignal(signal.SIGINT) is signal.default_int_handler
print(interrupt, signal.getsignal(signal.SIGQUIT) == signal.SIG_DFL, flush=True)
"""


@pytest.mark.skipif(
    shutil.which("strace") is None, reason="needs strace on this machine (setup-host installs it)"
)
def test_the_program_starts_with_sigint_and_sigquit_at_their_defaults(script: Path, tmp_path: Path) -> None:
    """The shell runs strace as a background job, which POSIX starts with SIGINT and SIGQUIT
    ignored: the program inherited that, and a stop_signal SIGINT (or a kill with SIGINT) did
    nothing to it (measured, scratch u13: 3 s of grace, then SIGKILL, exit 137)."""
    proc = start(script, "auto", tmp_path / "t.txt", sys.executable, "-c", DISPOSITIONS)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "True True"
    assert proc.wait(timeout=10) == 0


@pytest.mark.skipif(
    shutil.which("strace") is None, reason="needs strace on this machine (setup-host installs it)"
)
def test_sigint_forwarded_to_a_python_program_raises_keyboardinterrupt(script: Path, tmp_path: Path) -> None:
    proc = _ready(script, tmp_path / "t.txt")
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130  # Python dies of SIGINT after the KeyboardInterrupt
    finally:
        proc.kill()
