"""A scenario file's text, read so that no path can hang or exhaust the process.

Only a regular file is read (a symlink to one is fine: users link scenario folders). A FIFO or
a device is refused from `stat`, before any open; the open itself is non-blocking, and `fstat`
on the open file checks again, so a file swapped for a FIFO in between cannot block the read.
The size limit holds while reading (at most MAX_BYTES + 1 bytes are read), whatever stat said.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from orchestrator.errors import Problem, ScenarioError

MAX_BYTES = 256 * 1024

_KINDS = (
    (stat.S_ISDIR, "is a directory, not a scenario file"),
    (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)


def read_source(path: Path) -> str:
    try:
        info = os.stat(path)  # follows a symlink: what counts is what it points to
        _check_kind(path, info.st_mode, info.st_size)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            _check_kind(path, info.st_mode, info.st_size)
            data = _read_at_most(fd, MAX_BYTES + 1)
        finally:
            os.close(fd)
    except (FileNotFoundError, NotADirectoryError):
        raise _refuse(path, "no such file") from None
    except OSError as exc:
        raise _refuse(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise _refuse(path, f"more than {MAX_BYTES} bytes: a scenario is at most {MAX_BYTES}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(path, f"not UTF-8 text (byte {exc.start})") from None


def _check_kind(path: Path, mode: int, size: int) -> None:
    for test, problem in _KINDS:
        if test(mode):
            raise _refuse(path, problem)
    if not stat.S_ISREG(mode):
        raise _refuse(path, "not a regular file")
    if size > MAX_BYTES:
        raise _refuse(path, f"{size} bytes: a scenario is at most {MAX_BYTES}")


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = os.read(fd, min(limit - total, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _refuse(path: Path, message: str) -> ScenarioError:
    return ScenarioError([Problem(str(path), None, "", message)])
