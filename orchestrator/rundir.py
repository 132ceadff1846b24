"""The run directory, safe on a machine shared with other users.

No one but the user who runs tcpscen may write into a run directory, at any moment: it is made
new (never an existing one), mode 0755 at most, in a runs folder where no other user can rename
it away. Every file tcpscen writes there is created new through the directory's descriptor
(`O_CREAT | O_EXCL | O_NOFOLLOW` with `dir_fd`): a symlink or a file planted in advance is never
followed nor reused; the write fails and says so. Writers that only take a path (the annotated
pcapng) write into a private staging folder reached through the descriptor, and the finished file
is linked into place. At the end every file is given to the user who ran tcpscen: under sudo the
one named by SUDO_UID/SUDO_GID, not root.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from orchestrator.errors import StorageError, UsageError

FILE_MODE = 0o644  # the umask may take more away; never write for group or others
DIR_MODE = 0o755
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def invoking_user() -> tuple[int, int]:
    """(uid, gid) of the user who ran tcpscen: under sudo (root with SUDO_UID) the one who ran sudo."""
    if os.geteuid() == 0:
        uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
        if uid.isdigit():
            return int(uid), int(gid) if gid.isdigit() else int(uid)
    return os.getuid(), os.getgid()


def give(path: Path | str, dir_fd: int | None = None) -> None:
    """Make one file or directory (never a symlink's target) the invoking user's; as root only."""
    uid, gid = invoking_user()
    if os.geteuid() == 0:
        os.chown(path, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def make_dirs(path: Path) -> None:
    """`mkdir -p`, each folder made here given to the invoking user (under sudo: not left to root)."""
    missing: list[Path] = []
    for parent in (path, *path.parents):
        if parent.exists() or parent.is_symlink():
            break
        missing.append(parent)
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for made in reversed(missing):
        give(made)


def check_runs_root(path: Path, option: str) -> None:
    """Refuse a runs folder where another user could rename a run directory away and put their own
    in its place: one others may write into without the sticky bit (as /tmp has)."""
    info = path.stat()
    if info.st_mode & stat.S_ISVTX:
        return
    _uid, gid = invoking_user()
    if info.st_mode & stat.S_IWOTH or (info.st_mode & stat.S_IWGRP and info.st_gid not in (gid, 0)):
        raise UsageError(
            f"{option} {path}: other users may write there (mode {stat.S_IMODE(info.st_mode):o}, "
            "no sticky bit), so one could swap a run directory for their own: use a folder of yours"
        )


class RunDir:
    """An open run directory. Every write goes through its descriptor and makes a new file."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def create(cls, path: Path) -> RunDir:
        """Make the directory; FileExistsError if anything (a planted symlink too) has the name."""
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.mkdir(path.name, DIR_MODE, dir_fd=parent)
            fd = os.open(path.name, _DIR_FLAGS, dir_fd=parent)
        finally:
            os.close(parent)
        return cls(path, fd)

    @classmethod
    def open(cls, path: Path, *, private: bool = True) -> RunDir:
        """An existing run directory, not through a symlink. `private`: it must be ours and
        writable by no one else (a run's); `tcpscen report` also takes an older one as it is."""
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError as exc:
            raise StorageError(f"cannot open the run directory {path}: {exc.strerror or exc}") from None
        info = os.fstat(fd)
        if private and (info.st_uid != os.geteuid() or info.st_mode & 0o022):
            os.close(fd)
            raise StorageError(
                f"{path} is not a private run directory (owner {info.st_uid}, "
                f"mode {stat.S_IMODE(info.st_mode):o}): refusing to write into it"
            )
        return cls(path, fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, name: str, data: bytes | str) -> None:
        """A new file with this content; an existing name (tcpscen's or not) is refused."""
        fd = self._new(name)
        self._fill(fd, name, data)

    def replace(self, name: str, data: bytes | str) -> None:
        """A new file with this content in place of the old one (`tcpscen report`): the old entry,
        a symlink included, is replaced, never written through."""
        temp = self._temp_name(name)
        self._fill(self._new(temp), temp, data)
        self._rename(temp, name, replace=True)

    def create_for(self, name: str, uid: int, gid: int) -> Path:
        """An empty new file that another process (the capture) will write, given to uid:gid;
        returns its path for a bind mount."""
        fd = self._new(name)
        try:
            if (uid, gid) != (os.geteuid(), os.getegid()):
                os.fchown(fd, uid, gid)
        except OSError as exc:
            raise self._error(name, exc) from None
        finally:
            os.close(fd)
        return self.path.resolve() / name

    def append(self, name: str) -> IO[str]:
        """A new file opened for writing line by line (the journal)."""
        return os.fdopen(self._new(name), "w", buffering=1, encoding="utf-8")

    @contextlib.contextmanager
    def staged(self, name: str, *, replace: bool = False) -> Iterator[Path]:
        """A path for a writer that only takes paths: inside a private folder made for it and
        reached through this directory's descriptor; the finished file is then put in place."""
        folder = f".staging-{secrets.token_hex(4)}"
        try:
            os.mkdir(folder, 0o700, dir_fd=self.fd)
        except OSError as exc:
            raise self._error(folder, exc) from None
        try:
            yield self.anchor() / folder / name
            self._rename(f"{folder}/{name}", name, replace=replace)
        except OSError as exc:
            raise self._error(name, exc) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{folder}/{name}", dir_fd=self.fd)
            with contextlib.suppress(OSError):
                os.rmdir(folder, dir_fd=self.fd)

    def full(self) -> StorageError | None:
        """The error to stop with if no unprivileged writer (the capture) has space left here."""
        try:
            space = os.fstatvfs(self.fd)
        except OSError:
            return None
        if space.f_bavail > 0:
            return None
        captures = sorted(n for n in os.listdir(self.fd) if n.endswith(".pcap"))
        return StorageError(
            f"cannot write {self.path}: No space left on device"
            + (f" ({', '.join(captures)} may be cut short)" if captures else "")
        )

    def anchor(self) -> Path:
        """This directory by its descriptor where the system allows it (/proc/self/fd), so that a
        path below it cannot be redirected by renaming anything above."""
        by_fd = Path(f"/proc/self/fd/{self.fd}")
        return by_fd if by_fd.is_dir() else self.path

    def hand_over(self) -> None:
        """Every entry, then the directory, given to the invoking user (as root: the capture's
        files belong to its unprivileged user until now; under sudo, all of it to the sudo user)."""
        if os.geteuid() != 0 or self.fd < 0:
            return
        with os.scandir(self.fd) as entries:
            names = [e.name for e in entries]
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                give(name, dir_fd=self.fd)
        uid, gid = invoking_user()
        os.fchown(self.fd, uid, gid)

    def _new(self, name: str) -> int:
        try:
            return os.open(name, _NEW_FILE, FILE_MODE, dir_fd=self.fd)
        except FileExistsError:
            raise StorageError(
                f"{self.path / name} already exists, and tcpscen did not make it: "
                "refusing to write through it"
            ) from None
        except OSError as exc:
            raise self._error(name, exc) from None

    def _fill(self, fd: int, name: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
        except OSError as exc:
            raise self._error(name, exc) from None

    def _rename(self, src: str, dst: str, *, replace: bool) -> None:
        if replace:
            os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            return
        try:  # a hard link fails if the name exists: no rename-over of anything planted
            os.link(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        except FileExistsError:
            raise StorageError(
                f"{self.path / dst} already exists, and tcpscen did not make it: refusing to replace it"
            ) from None

    def _temp_name(self, name: str) -> str:
        return f".{name}.{secrets.token_hex(4)}.tmp"

    def _error(self, name: str, exc: OSError) -> StorageError:
        return StorageError(f"cannot write {self.path / name}: {exc.strerror or exc}")
