"""Who owns a run's Docker objects: the process that made them, told apart from any later process
with the same pid by its start time and the machine's boot, so `tcpscen clean` removes the runs
of dead processes only, never one that is still going."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Mapping
from enum import Enum
from pathlib import Path

PID = "tcpscen.owner.pid"
START = "tcpscen.owner.start"  # the process's start, clock ticks after boot (/proc/PID/stat)
BOOT = "tcpscen.owner.boot"  # /proc/sys/kernel/random/boot_id: a pid of an earlier boot is no one
MACHINE = "tcpscen.owner.machine"  # an engine shared by several machines: not ours to judge


class Owner(Enum):
    ALIVE = "alive"  # the process that made it is still running: leave it
    DEAD = "dead"  # a leftover: `tcpscen clean` removes it
    UNKNOWN = "unknown"  # another machine's, or made by an older tcpscen: `clean --all` only


def owner_labels() -> dict[str, str]:
    """This process, as labels on every object it makes."""
    return {PID: str(os.getpid()), START: _start_of(os.getpid()), BOOT: _boot_id(), MACHINE: _machine()}


def owner_of(labels: Mapping[str, str]) -> Owner:
    pid = labels.get(PID, "")
    if not pid.isdigit() or labels.get(MACHINE) is None:
        return Owner.UNKNOWN
    if labels[MACHINE] != _machine():
        return Owner.UNKNOWN
    if labels.get(BOOT, "") != _boot_id():
        return Owner.DEAD  # the machine rebooted since: every process of then is gone
    if not _alive(int(pid)):
        return Owner.DEAD
    return Owner.ALIVE if labels.get(START, "") == _start_of(int(pid)) else Owner.DEAD


def describe(labels: Mapping[str, str]) -> str:
    return f"pid {labels.get(PID, '?')}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _start_of(pid: int) -> str:
    """Field 22 of /proc/PID/stat, after the command name (which may hold spaces and ')')."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""  # no /proc (not Linux), or no such process
    return stat.rpartition(")")[2].split()[19]


@functools.cache
def _boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


@functools.cache
def _machine() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            text = Path(path).read_text().strip()
            if text:
                return text
    return socket.gethostname()
