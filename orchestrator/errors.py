"""One error base, turned into exit codes at the CLI edge (0 pass, 1 fail, 2 bad input, 3 engine
or infrastructure: the engine, the disk)."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_ENGINE = 3


class TcpscenError(Exception):
    exit_code = EXIT_FAIL


class UsageError(TcpscenError):
    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class Problem:
    """One mistake in an input file, located for a human."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class ScenarioError(TcpscenError):
    """Every problem found in a scenario file, reported at once."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class CaptureFormatError(TcpscenError):
    """A file that is not a packet capture we can read."""

    exit_code = EXIT_BAD_INPUT


class EngineError(TcpscenError):
    """The Docker engine is missing, unreachable or misbehaving."""

    exit_code = EXIT_ENGINE


class StorageError(TcpscenError):
    """A file of the run cannot be written: a full disk, or a name someone else took first."""

    exit_code = EXIT_ENGINE
