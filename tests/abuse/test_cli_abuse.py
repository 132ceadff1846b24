"""Hostile and clumsy scenario files and options at the real CLI: each is exit 2 with a message
naming the file, quickly, within a memory limit, no traceback, and nothing reaches Docker."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.abuse.conftest import ROOT, Done, tcpscen

GOOD = (ROOT / "scenarios" / "power_cut.yaml").read_text()


def billion_laughs() -> str:
    """The 708-byte file that made `validate` grow past 2.8 GB: 9 levels of 9 aliases."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def with_server(key: str, value: str) -> str:
    return GOOD.replace("    address: 10.77.0.10\n", f"    address: 10.77.0.10\n    {key}: {value}\n", 1)


def with_subnet(subnet: str) -> str:
    return GOOD.replace("duration: 30s\n", f"duration: 30s\nnetwork: {{subnet: {subnet}}}\n", 1)


# name: (the file's text, what the message says)
FILES: dict[str, tuple[str, str]] = {
    "billion_laughs": (billion_laughs(), "more than 10000 values"),
    "brackets": ("[" * 20_000 + "]" * 20_000, "nest"),  # ours, or libyaml's own depth limit
    "block_nesting": ("".join(f"{' ' * i}- \n" for i in range(500)), "nested more than 64 levels"),
    "huge_int": ("duration: " + "1" * 5_000 + "\n", "a number of 5000 characters"),
    "cycle": ("a: &a [*a]\n", "alias *a is inside its own anchor"),
    "bad_int_tag": ("duration: !!int abc\n", "'abc' is not a valid int"),
    "python_tag": ("!!python/object/apply:os.system [id]\n", "is not allowed"),
    "oversize": ("#" * (256 * 1024 + 1), "a scenario is at most 262144"),
    "multicast_mac": (
        with_server("mac", '"01:00:5e:00:00:01"'),
        "hosts.server.mac: 01:00:5e:00:00:01 is a multicast",
    ),
    "broadcast_mac": (with_server("mac", '"ff:ff:ff:ff:ff:ff"'), "is a multicast or broadcast MAC"),
    "zero_mac": (
        with_server("mac", '"00:00:00:00:00:00"'),
        "hosts.server.mac: 00:00:00:00:00:00 is no host's MAC",
    ),
    "image_option": (
        with_server("image", '"--privileged"'),
        "hosts.server.image: '--privileged' is not an image",
    ),
    "image_upper": (with_server("image", '"Debian:Bookworm"'), "is not an image reference"),
    "subnet_half": (with_subnet("0.0.0.0/1"), "network.subnet: 0.0.0.0/1 includes the unspecified"),
    "subnet_loopback": (with_subnet("127.77.0.0/24"), "network.subnet: 127.77.0.0/24 includes loopback"),
    "subnet_link_local": (with_subnet("169.254.0.0/16"), "169.254.0.0/16 includes link-local"),
    "subnet_multicast": (with_subnet("224.77.0.0/24"), "224.77.0.0/24 includes multicast"),
    "subnet_public": (with_subnet("8.8.8.0/24"), "8.8.8.0/24 is not private"),
    "memory_bare": (with_server("limits", "{memory: 512}"), "hosts.server.limits.memory: 512 has no unit"),
    "memory_huge": (with_server("limits", "{memory: 1000g}"), "memory must be between 32m and 64g"),
    "pids_huge": (with_server("limits", "{pids: 10000000}"), "hosts.server.limits.pids"),
    "name_escape": (GOOD.replace("name: power_cut", r'name: "\e[2J\e]8;;http://x\e\\gone"'), "name: control"),
    "description_c1": (
        GOOD.replace("description: >", r'description: "x\u009b2J"' + "\nnotes: >"),
        "description: control",
    ),
}


def refused(done: Done, needle: str, file: Path | str, quick: float) -> None:
    shown = done.stdout + done.stderr
    assert done.code == 2, shown
    assert "Traceback" not in done.stderr, done.stderr
    assert str(file) in done.stderr, done.stderr
    assert needle in done.stderr, done.stderr
    assert done.seconds < quick, f"{done.seconds:.2f} s (at most {quick:.2f})"


# `run` must refuse them just as early: these passed `validate` once, then failed in the engine.
REACHED_DOCKER = {
    c for c in FILES if c.split("_")[0] in ("multicast", "broadcast", "zero", "image", "subnet", "memory")
}
CASES = [(c, "validate") for c in sorted(FILES)] + [
    (c, "run") for c in sorted({*REACHED_DOCKER, "billion_laughs"})
]


@pytest.mark.parametrize(("case", "command"), CASES)
def test_hostile_files_are_refused(tmp_path: Path, quick: float, case: str, command: str) -> None:
    text, needle = FILES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    runs = tmp_path / "runs"
    done = tcpscen(command, path, *(["--runs-dir", runs] if command == "run" else []))
    refused(done, needle, path, quick)
    assert not runs.exists()  # nothing of a run was started


def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    return path


def dev_zero_link(tmp_path: Path) -> Path:
    path = tmp_path / "zero.yaml"
    path.symlink_to("/dev/zero")
    return path


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (fifo, "is a FIFO (named pipe), not a regular file"),
        (dev_zero_link, "is a character device, not a regular file"),
        (lambda _: Path("/dev/zero"), "is a character device, not a regular file"),
        (lambda _: Path("/dev/stdin"), "not a regular file"),
    ],
    ids=["fifo", "symlink-to-dev-zero", "dev-zero", "dev-stdin"],
)
def test_files_that_are_not_regular_are_never_read(
    tmp_path: Path, quick: float, make: Callable[[Path], Path], needle: str
) -> None:
    path = make(tmp_path)
    refused(tcpscen("validate", path), needle, path, quick)
    if path.parent == tmp_path:  # as part of a folder too
        refused(tcpscen("validate", tmp_path), needle, path, quick)


def test_a_symlink_to_a_scenario_is_read(tmp_path: Path) -> None:
    link = tmp_path / "linked.yaml"
    link.symlink_to(ROOT / "scenarios" / "power_cut.yaml")
    done = tcpscen("validate", link)
    assert done.code == 0 and f"ok {link}: power_cut" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("command", ["validate", "run"])
def test_an_empty_folder_is_exit_2(tmp_path: Path, quick: float, command: str) -> None:
    (tmp_path / "notes.txt").write_text("not a scenario")
    refused(tcpscen(command, tmp_path), "no scenario files (*.yaml) in this folder", tmp_path, quick)


def test_markup_in_names_and_paths_is_printed_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "["  # the path then reads .../[/]odd.yaml
    folder.mkdir()
    path = folder / "]odd [bold].yaml"
    path.write_text(GOOD.replace("name: power_cut", 'name: "[/][bold]x[red]"'))
    done = tcpscen("validate", path)
    assert done.code == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == f"ok {path}: [/][bold]x[red] (2 hosts, 1 steps)\n"
    path.write_text(GOOD.replace("duration: 30s", "duration: soon"))
    done = tcpscen("validate", path)
    assert done.code == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{path}:10: duration: expected a duration" in done.stderr


def test_escape_sequences_in_keys_and_paths_are_written_out(tmp_path: Path, quick: float) -> None:
    path = tmp_path / "evil\x1b[2J.yaml"
    path.write_text(GOOD.replace("name: power_cut", '"\\e]0;owned\\a": 1'))
    done = tcpscen("validate", path)
    refused(done, "\\x1b]0;owned\\x07: unknown key", str(tmp_path / "evil\\x1b[2J.yaml"), quick)
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr


@pytest.mark.parametrize(
    ("runs_dir", "needle"),
    [
        ("file", "exists and is not a directory"),
        ("file/below", "a part of the path is a file, not a directory"),
        ("/proc/1/tcpscen-runs", "cannot be created"),
        ("read-only", "cannot create a file there"),
    ],
)
def test_a_runs_dir_that_cannot_be_written_is_exit_2_before_docker(
    tmp_path: Path, quick: float, runs_dir: str, needle: str
) -> None:
    (tmp_path / "file").write_text("x")
    target = tmp_path / runs_dir
    if runs_dir == "read-only":
        # Root writes through a directory's mode bits: /proc/1 refuses new files to everyone.
        target = Path("/proc/1") if os.geteuid() == 0 else target
        if os.geteuid() != 0:
            target.mkdir(mode=0o555)
    done = tcpscen("run", ROOT / "scenarios" / "power_cut.yaml", "--runs-dir", target)
    refused(done, f"--runs-dir {target}: {needle}", target, quick)


def test_a_runs_dir_others_may_write_in_is_exit_2_before_docker(tmp_path: Path, quick: float) -> None:
    """Another user could rename a run directory away there and put their own in its place."""
    target = tmp_path / "open"
    target.mkdir()
    target.chmod(0o777)
    done = tcpscen("run", ROOT / "scenarios" / "power_cut.yaml", "--runs-dir", target)
    refused(
        done, f"--runs-dir {target}: other users may write there (mode 777, no sticky bit)", target, quick
    )
    assert [p.name for p in target.iterdir()] == []
