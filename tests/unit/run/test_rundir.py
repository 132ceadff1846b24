"""The run directory on a shared machine: another user can write nothing into it, and a symlink or
a file planted by someone else is never followed nor reused (each write refuses it instead)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.errors import StorageError, UsageError
from orchestrator.run.journal import Journal
from orchestrator.run.runner import new_run
from orchestrator.rundir import RunDir, check_runs_root, invoking_user, make_dirs
from tests.unit.run.test_runner import scenario

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: acts as another user")


def as_nobody(action: Callable[[], None]) -> int:
    """Run `action` in a child that became nobody; its exit status: 0 done, 1 refused (OSError)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            code = 0
        except OSError:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user can reach, as a runs folder is (pytest's own tmp_path is root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="tcpscen-rundir-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A root-only file that a planted symlink points at."""
    target = tmp_path / "shadow"
    target.write_text("secret\n")
    target.chmod(0o600)
    return target


@pytest.fixture
def run_dir(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path / "run")


def test_a_new_run_directory_is_writable_by_its_user_alone(tmp_path: Path) -> None:
    files = RunDir.create(tmp_path / "run")
    info = os.fstat(files.fd)
    assert info.st_uid == os.geteuid() and not info.st_mode & 0o022
    files.write("verdict.json", "{}")
    assert not (tmp_path / "run" / "verdict.json").stat().st_mode & 0o022
    with pytest.raises(FileExistsError):  # never an existing directory, whoever made it
        RunDir.create(tmp_path / "run")


@root_only
def test_another_user_cannot_plant_anything_in_a_run_directory(shared: Path) -> None:
    run_dir = RunDir.create(shared / "run")
    assert as_nobody(lambda: os.listdir(run_dir.path)) == 0  # readable: only writing is refused
    assert as_nobody(lambda: (run_dir.path / "verdict.json").write_text("forged")) == 1
    assert as_nobody(lambda: (run_dir.path / "client.ss.txt").symlink_to("/etc/shadow")) == 1
    assert os.listdir(run_dir.path) == []


@pytest.mark.parametrize(
    "write",
    [
        lambda d, n: d.write(n, "ss output"),
        lambda d, n: d.append(n).write("line\n"),
        lambda d, n: d.create_for(n, os.geteuid(), os.getegid()),
    ],
    ids=["write", "append", "capture"],
)
def test_a_planted_symlink_is_never_followed(
    run_dir: RunDir, secret: Path, write: Callable[[RunDir, str], object]
) -> None:
    (run_dir.path / "client.ss.txt").symlink_to(secret)
    with pytest.raises(StorageError, match="already exists, and tcpscen did not make it"):
        write(run_dir, "client.ss.txt")
    assert secret.read_text() == "secret\n" and stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_a_staged_file_is_never_put_over_a_planted_one(run_dir: RunDir, secret: Path) -> None:
    (run_dir.path / "client.annotated.pcapng").symlink_to(secret)
    with (
        pytest.raises(StorageError, match="refusing to replace it"),
        run_dir.staged("client.annotated.pcapng") as p,
    ):
        p.write_bytes(b"pcapng")
    assert secret.read_text() == "secret\n"
    assert [n for n in os.listdir(run_dir.path) if n.startswith(".staging")] == []


def test_replacing_replaces_a_symlink_instead_of_writing_through_it(run_dir: RunDir, secret: Path) -> None:
    """`tcpscen report` rewrites its files: the old entry goes, whatever it was."""
    (run_dir.path / "report.html").symlink_to(secret)
    run_dir.replace("report.html", "<html>")
    with run_dir.staged("junit.xml", replace=True) as p:
        p.write_text("<xml/>")
    assert secret.read_text() == "secret\n"
    assert not (run_dir.path / "report.html").is_symlink()
    assert (run_dir.path / "report.html").read_text() == "<html>"
    assert sorted(os.listdir(run_dir.path)) == ["junit.xml", "report.html"]


@root_only
def test_a_file_made_in_advance_by_another_user_is_refused(shared: Path) -> None:
    """Where a run directory was once open to all (mode 1777), `nobody` could create verdict.json
    first and keep editing the verdict: tcpscen refuses to write through it."""
    folder = shared / "open"
    folder.mkdir()
    folder.chmod(0o1777)
    assert as_nobody(lambda: (folder / "verdict.json").write_text("forged")) == 0
    files = RunDir(folder, os.open(folder, os.O_RDONLY | os.O_DIRECTORY))
    journal = Journal(files)
    with pytest.raises(StorageError, match=r"verdict\.json already exists"):
        journal.write_json("verdict.json", {"passed": True})
    assert (folder / "verdict.json").read_text() == "forged"
    assert (folder / "verdict.json").stat().st_uid == NOBODY
    with pytest.raises(StorageError, match="not a private run directory"):
        RunDir.open(folder)


def test_a_journal_line_that_cannot_be_written_is_told_by_check(run_dir: RunDir, secret: Path) -> None:
    """A follower thread's write never raises there: check() raises it in the run loop."""
    (run_dir.path / "client.events.jsonl").symlink_to(secret)
    journal = Journal(run_dir)
    journal.agent_line("client", '{"event": "connected"}')  # no exception here
    journal.note("t0", t=1.0)
    with pytest.raises(StorageError, match=r"client\.events\.jsonl already exists"):
        journal.check()
    journal.close()
    assert (run_dir.path / "timeline.jsonl").read_text().count("t0") == 1
    assert secret.read_text() == "secret\n"


def test_a_planted_run_directory_name_is_left_alone(tmp_path: Path, secret: Path) -> None:
    """The name a run would take is already a symlink (to a folder of someone else's): the run
    takes another name and writes nothing through the link."""
    sc = scenario()
    first = new_run(sc, tmp_path)
    os.rmdir(first.run_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first.run_dir.symlink_to(elsewhere)
    again = new_run(sc, tmp_path)  # the same second, most likely: else simply a new name
    assert again.run_dir != first.run_dir and not again.run_dir.is_symlink()
    assert os.listdir(elsewhere) == []


@pytest.mark.parametrize(("mode", "refused"), [(0o777, True), (0o1777, False), (0o755, False)])
def test_a_runs_folder_others_could_rename_in_is_refused(tmp_path: Path, mode: int, refused: bool) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(mode)
    if refused:
        with pytest.raises(UsageError, match="other users may write there"):
            check_runs_root(runs, "--runs-dir")
    else:
        check_runs_root(runs, "--runs-dir")


@root_only
def test_under_sudo_everything_ends_the_sudo_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_UID", "4242")
    monkeypatch.setenv("SUDO_GID", "4243")
    assert invoking_user() == (4242, 4243)
    make_dirs(tmp_path / "a" / "runs")
    files = RunDir.create(tmp_path / "a" / "runs" / "run")
    files.write("verdict.json", "{}")
    files.create_for("client.pcap", NOBODY, NOBODY)  # the capture's, until the end
    files.append("timeline.jsonl").close()
    assert (files.path / "client.pcap").stat().st_uid == NOBODY
    files.hand_over()
    for path in [tmp_path / "a", tmp_path / "a" / "runs", files.path, *files.path.iterdir()]:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (4242, 4243), path
        assert not info.st_mode & 0o022, path
    assert tmp_path.stat().st_uid == 0  # what existed before is not tcpscen's to give away
