"""A fixed header of a capture format, declared once as a table of (name, struct format) fields,
as dpkt declares its headers: `pcap` and `pcapng` declare theirs with it, and every reader and
writer takes from it the struct for either byte order, the length, each field's offset and, for
the column reader, the numpy fields."""

from __future__ import annotations

from functools import cache
from struct import Struct, calcsize

__all__ = ["Layout"]

# struct format -> numpy's, for the field kinds the formats use ("x", padding, has no field).
_NUMPY = {"B": "u1", "H": "u2", "I": "u4", "i": "i4", "q": "i8"}


class Layout:
    """Fields in order, each a name and a struct format character ("x": a pad byte, unnamed)."""

    def __init__(self, *fields: tuple[str, str]) -> None:
        self.fields = fields
        self.format = "".join(f for _n, f in fields)
        self.size = calcsize("<" + self.format)
        self.offsets: dict[str, int] = {}
        at = 0
        for name, fmt in fields:
            if fmt != "x":
                self.offsets[name] = at
            at += calcsize("<" + fmt)

    def struct(self, endian: str) -> Struct:
        """The packed header in byte order `endian` ("<" or ">")."""
        return _compiled(endian + self.format)

    def field_struct(self, name: str, endian: str) -> Struct:
        """One field alone, to unpack at its offset."""
        return _compiled(endian + dict(self.fields)[name])

    def numpy_fields(self, endian: str, base: int = 0) -> list[tuple[str, str, int]]:
        """(name, numpy format, offset + `base`) per field, for a structured dtype."""
        return [(n, endian + _NUMPY[f], base + self.offsets[n]) for n, f in self.fields if f != "x"]


@cache
def _compiled(fmt: str) -> Struct:
    return Struct(fmt)
