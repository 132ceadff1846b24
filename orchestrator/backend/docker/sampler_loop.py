"""The socket sampler's loop, run by the image's own python3 inside a host container (its source
is passed with `python3 -c`, so the image needs nothing new): `ss -tanoi` every INTERVAL
seconds, each sample written as one block headed by its wall-clock time and closed by an end
line, so a sample cut short by the container's death is recognisable and dropped.

It only reads: `ss` asks the kernel through netlink sock_diag, which sends no packet and needs
no capability. Standard library only, Python 3.11 (Debian bookworm's).
"""

from __future__ import annotations

import subprocess
import sys
import time

HEADER = "# tcpscen-ss"
END = "# end"
# As the end-of-run snapshot (HOST.ss.txt). Not -e (the socket's cookie costs a cgroup lookup per
# call, for nothing the timeline needs), and not -4/-6 or several -f: iproute2 6.1 then lists
# nothing at all; a dual-stack listener's IPv4 connections are inet6 sockets, so both are needed.
SS = ["ss", "-tanoi"]


def sample_block(boot: int, started: float, took: float, returncode: int, output: str) -> str:
    """One sample: the header (its time, how long ss took, its exit status), ss's lines without
    their padding, the end line."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    head = f"{HEADER} boot={boot} t={started:.6f} took={took:.6f} rc={returncode}"
    return "\n".join([head, *lines, END]) + "\n"


def run(path: str, interval_s: float, boot: int) -> None:
    with open(path, "a", encoding="utf-8") as out:
        due = time.time()
        while True:
            started = time.time()
            done = subprocess.run(SS, capture_output=True, text=True, check=False)
            out.write(sample_block(boot, started, time.time() - started, done.returncode, done.stdout))
            out.flush()
            due += interval_s
            # Behind schedule (a busy machine): start again from now rather than catch up in a burst.
            due = max(due, time.time())
            time.sleep(max(0.0, due - time.time()))


if __name__ == "__main__":
    run(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
