"""The kernel's own view over time: a socket sampler in each host's namespace.

One long-lived loop per boot (`sampler_loop.py`, run by the host container's python3 through one
detached `exec`), not an `exec` per sample: an exec costs the engine about 50 ms, the loop's `ss`
a few ms of one core. It writes `HOST.ss-samples.txt` (`HOST.bootN.ss-samples.txt` after a power
cycle) into the run directory, and dies with the host container: at power off, or when the
capture is stopped at teardown. `verdict.socket_timeline` turns the files into
`HOST.sockets.jsonl`.
"""

from __future__ import annotations

from pathlib import Path

from docker.models.containers import Container

from orchestrator.backend.docker import sampler_loop
from orchestrator.capture.tcpdump import RUN_DIR_MOUNT

_SOURCE = Path(sampler_loop.__file__).read_text()


def samples_name(host: str, boot: int) -> str:
    """client.ss-samples.txt; a host that powers on again gets client.boot2.ss-samples.txt."""
    return f"{host}.ss-samples.txt" if boot == 1 else f"{host}.boot{boot}.ss-samples.txt"


def start_sampler(container: Container, host: str, boot: int, user: str, interval_s: float) -> str:
    """Start the loop in `container` (the host's namespace) as `user`, with the container's own
    capabilities (NET_RAW only: ss needs none); return the samples' file name."""
    name = samples_name(host, boot)
    command = ["python3", "-c", _SOURCE, f"{RUN_DIR_MOUNT}/{name}", f"{interval_s:g}", str(boot)]
    container.exec_run(command, user=user, detach=True)
    return name
