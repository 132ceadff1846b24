"""Text from users (scenario names and descriptions, paths, YAML keys, what an agent printed),
made safe to print on a terminal: control characters (an escape sequence could clear the screen,
retitle the window or hide a link) shown as escapes such as \\x1b, and rich's markup escaped."""

from __future__ import annotations

import re

from rich.markup import escape

# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what the terminal shows.
_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, multiline: bool = False) -> str:
    """The text with every control character written out (a new line and a tab kept if multiline)."""
    return (_LINES if multiline else _ONE_LINE).sub(_written_out, text)


def markup_safe(text: str, *, multiline: bool = False) -> str:
    """For a string that goes into rich markup: printable, and its [brackets] taken literally."""
    return escape(printable(text, multiline=multiline))


def _written_out(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
