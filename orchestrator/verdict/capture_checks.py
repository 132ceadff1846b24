"""Whether each capture is whole. tcpdump says at its end how many packets it could not take
from the kernel's ring; a capture that lost some undercounts everything judged from it, so the
run cannot pass on it: one failing check per such host, named `capture.HOST`, which names the
expectations judged from packets; each of those says, in its evidence, that its packets were
incomplete (a PASS from a short capture is not a PASS on the whole traffic)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from orchestrator.capture.tcpdump import dropped_by_kernel
from orchestrator.tcp.wording import plural
from orchestrator.verdict.expectations import Check

# Checks judged from something else than packets: the timeline, the captures' own counts, the
# kernels' counters, tables and samples (`sockets[i]`: the states ss listed), the apps' events
# and output. An app's time is from packets only when it is compared with the kernel model's
# (`at: predicted`), whose start is a packet. A middlebox's forgetting and picking up are in
# conntrack's log.
_NOT_FROM_PACKETS = ("timeline[", "capture.", "kernel_counters.", "socket_at_end.", "sockets[", "apps.")
_FROM_CONNTRACK = (".forgot", ".picked_up")


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
                    f"tcpdump dropped {plural(dropped, 'packet')} (the kernel's ring "
                    f"was full): {host}'s capture is incomplete",
                    [f"{host}.capture.log: packets dropped by kernel"],
                )
            )
    return out


def tell_incomplete(checks: list[Check], predicted_apps: Collection[str]) -> None:
    """On each failed capture check, which expectations were judged from packets; on each of
    those, that its packets were incomplete. `predicted_apps`: hosts whose app's time is
    compared with the kernel model's."""
    lost = [c for c in checks if c.name.startswith("capture.") and not c.passed]
    if not lost:
        return
    timed = {f"apps.{host}.at" for host in predicted_apps}
    hit = [c for c in checks if _from_packets(c.name, timed)]
    names = ", ".join(c.name for c in hit)
    for c in lost:
        c.observed += (
            f"; judged from packets, so possibly wrong: {names}"
            if hit
            else "; no expectation here is judged from packets"
        )
    where = ", ".join(c.name for c in lost)
    for c in hit:
        c.evidence.append(f"judged from an incomplete capture ({where})")


def _from_packets(name: str, timed: set[str]) -> bool:
    if name in timed:
        return True
    if name.startswith("middlebox.") and name.endswith(_FROM_CONNTRACK):
        return False
    return not name.startswith(_NOT_FROM_PACKETS)
