"""User text on the terminal: control characters written out, rich markup taken literally,
in the one helper and where the console output uses it."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import pytest
from rich.console import Console

from orchestrator.report.console import ConsoleObserver, print_verdict
from orchestrator.report.terminal import markup_safe, printable
from orchestrator.run.records import AgentEvent, FaultRecord
from orchestrator.verdict.expectations import Check
from orchestrator.verdict.judge import Verdict

HOSTILE = "a\x1b[2Jb\x1b]8;;http://x\x1b\\c\x9b31m\x07\u202eexe"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain [text] é ✓", "plain [text] é ✓"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
        ("tab\there\r\nnext", "tab\\x09here\\x0d\\x0anext"),
        ("\u202eexe.txt", "\\u202eexe.txt"),
    ],
)
def test_control_characters_are_written_out(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_multiline_keeps_new_lines_and_tabs_only() -> None:
    assert printable("a\n\tb\r\x1b", multiline=True) == "a\n\tb\\x0d\\x1b"


def test_markup_is_taken_literally() -> None:
    out = io.StringIO()
    Console(file=out, width=200).print(f"ok {markup_safe('[/][bold]x[red] ' + HOSTILE)}")
    assert out.getvalue() == "ok [/][bold]x[red] " + printable(HOSTILE) + "\n"


def rendered(draw: Callable[[Console], None]) -> str:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=True)
    draw(console)
    return out.getvalue()


def test_the_verdict_and_progress_lines_never_carry_escapes_from_their_inputs() -> None:
    verdict = Verdict(
        scenario=HOSTILE,
        checks=[Check("close", False, HOSTILE, HOSTILE, [HOSTILE])],
        connection=None,
        apps={},
        predictions={},
        faults=[],
        t0=None,
        notes=[HOSTILE],
    )

    def progress(console: Console) -> None:
        observer = ConsoleObserver(console, verbose=True, live=False)
        observer.event(AgentEvent(HOSTILE, HOSTILE, time.time(), errno=HOSTILE, peer=HOSTILE))
        observer.fault(FaultRecord(0, "kill", "server", time.time(), HOSTILE, error=HOSTILE))
        observer.step(HOSTILE)

    for text in (rendered(lambda c: print_verdict(c, verdict)), rendered(progress)):
        assert printable(HOSTILE) in text
        for raw in ("\x1b[2J", "\x1b]8", "\x9b", "\x07", "\u202e"):
            assert raw not in text
