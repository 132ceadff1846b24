"""Reading a scenario file: only regular files, never a blocking open, the size bounded while reading."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from orchestrator.errors import ScenarioError
from orchestrator.scenario import source
from orchestrator.scenario.source import MAX_BYTES, read_source


def refused(path: Path) -> str:
    with pytest.raises(ScenarioError) as caught:
        read_source(path)
    [problem] = caught.value.problems
    assert problem.file == str(path)
    return problem.message


def test_regular_file_and_a_symlink_to_one_are_read(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text("name: x\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    assert read_source(real) == read_source(link) == "name: x\n"


def test_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(refused(fifo)), daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the thread so the suite can go on, then fail
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert result == ["is a FIFO (named pipe), not a regular file"]


def test_fifo_swapped_in_after_stat_is_caught_by_fstat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: stat saw a regular file, then a FIFO took its place. The open must not block
    (O_NONBLOCK) and fstat must refuse it."""
    regular, fifo = tmp_path / "regular", tmp_path / "fifo.yaml"
    regular.write_text("x")
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(
        source.os, "stat", lambda p: real_stat(regular) if str(p) == str(fifo) else real_stat(p)
    )
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(refused(fifo)), daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        pytest.fail("opening a FIFO blocked")
    assert result == ["is a FIFO (named pipe), not a regular file"]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_devices_are_refused_directly_and_through_a_symlink(tmp_path: Path, device: str) -> None:
    assert refused(Path(device)) == "is a character device, not a regular file"
    link = tmp_path / "zero.yaml"
    link.symlink_to(device)
    assert refused(link) == "is a character device, not a regular file"


def test_the_limit_holds_while_reading_whatever_stat_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that says it is small (a /proc file says 0 bytes, a file can grow): no more than
    MAX_BYTES + 1 bytes are read, and the file is refused."""
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES * 4))
    small = tmp_path / "small"
    small.write_text("x")
    real_stat, real_read = os.stat, os.read
    monkeypatch.setattr(source.os, "stat", lambda p: real_stat(small))
    monkeypatch.setattr(source.os, "fstat", lambda fd: real_stat(small))
    read: list[int] = []

    def counting_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(source.os, "read", counting_read)
    assert "more than" in refused(big)
    assert sum(read) == MAX_BYTES + 1


def test_size_from_stat_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    assert refused(big) == f"{MAX_BYTES + 1} bytes: a scenario is at most {MAX_BYTES}"
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"#" * MAX_BYTES)
    assert len(read_source(exact)) == MAX_BYTES


def test_other_kinds_of_bad_path(tmp_path: Path) -> None:
    assert refused(tmp_path) == "is a directory, not a scenario file"
    assert refused(tmp_path / "absent.yaml") == "no such file"
    (tmp_path / "file").write_text("x")
    assert refused(tmp_path / "file" / "below.yaml") == "no such file"
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    assert refused(loop).startswith("cannot read: ")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    assert refused(latin) == "not UTF-8 text (byte 9)"
