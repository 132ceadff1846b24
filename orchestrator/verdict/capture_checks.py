"""Whether each capture is whole. tcpdump says at its end how many packets it could not take
from the kernel's ring; a capture that lost some undercounts everything judged from it, so the
run cannot pass on it: one failing check per such host, named `capture.HOST`."""

from __future__ import annotations

from pathlib import Path

from orchestrator.capture.tcpdump import dropped_by_kernel
from orchestrator.verdict.expectations import Check


def capture_checks(run_dir: Path, hosts: list[str]) -> list[Check]:
    out = []
    for host in hosts:
        log = run_dir / f"{host}.capture.log"
        if not log.is_file():
            continue
        dropped = dropped_by_kernel(log.read_text(errors="replace"))
        if dropped:
            out.append(
                Check(
                    f"capture.{host}",
                    False,
                    "every packet captured",
                    f"tcpdump dropped {dropped} packets (the kernel's ring was full): counts and "
                    f"facts from {host}'s capture may be short",
                    [f"{host}.capture.log: packets dropped by kernel"],
                )
            )
    return out
