"""Checks of the free strings a scenario gives: the images it names and its name and description."""

from __future__ import annotations

import re

MAX_NAME = 200
# Docker's reference grammar ([registry/]name[:tag][@digest]); the registry part is a host name
# (with a port), told apart from the name's first component as Docker does: it has a . or a :,
# or is localhost. The name is lower case; nothing starts with '-', so no image is an option.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?",
    re.ASCII,
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}", re.ASCII)
_MAX_IMAGE = 512  # 255 for the name, 128 for the tag, a digest
# C0 and C1 controls and DEL, and the bidirectional overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def check_image(value: str) -> str:
    """An image reference Docker takes, or a ValueError saying what one looks like."""
    if not _is_reference(value):
        shown = repr(value) if len(value) <= 80 else repr(value[:80]) + "..."
        raise ValueError(
            f"{shown} is not an image reference: expected [registry/]name[:tag][@digest] in lower "
            "case, such as tcpscen/agent or debian:bookworm"
        )
    return value


def _is_reference(value: str) -> bool:
    if len(value) > _MAX_IMAGE:
        return False
    rest, _, digest = value.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        return False
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    name, tag = (rest[:colon], rest[colon + 1 :]) if colon > slash else (rest, None)
    if tag is not None and not _TAG.fullmatch(tag):
        return False
    first, _, remainder = name.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.fullmatch(first):
            return False
        name = remainder
    return len(name) <= 255 and _NAME.fullmatch(name) is not None


def check_text(value: str, *, multiline: bool) -> str:
    """A name or description with no control characters (terminal escapes could hide in them);
    a description may have new lines and tabs."""
    for match in _CONTROL.finditer(value):
        if multiline and match.group() in "\n\t":
            continue
        raise ValueError(f"control character {match.group()!r} at position {match.start()}: plain text only")
    if not multiline and len(value) > MAX_NAME:
        raise ValueError(f"a name of {len(value)} characters: at most {MAX_NAME}")
    return value
