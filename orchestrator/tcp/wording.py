"""Small pieces of the notes' sentences, shared by the modules that write them."""

from __future__ import annotations

__all__ = ["fmt_s", "plural"]


def fmt_s(s: float) -> str:
    """Seconds for a sentence: 0.2, 1.6, 7200."""
    return f"{s:.3f}".rstrip("0").rstrip(".")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
