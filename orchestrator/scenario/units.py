"""Human units for the YAML: durations ("200ms", "2s", "1m"), percentages ("10%"), sizes ("512m")
and count ranges (">=3").

A duration or a percentage always carries its unit: a bare `4000` could be seconds or
milliseconds (setsockopt's TCP_USER_TIMEOUT takes ms), and a bare `10` a fraction or a
percentage, so both are refused with the reading that was probably meant. Zero is zero in any
unit and may stand alone.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

MAX_SECONDS = 86_400.0  # a day: more than any timer a scenario can wait for
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_FACTOR = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a string with a unit ("200ms", "4s", "1.5m", "1h"); a bare number other than
    0 is refused, and so are bools (YAML's `yes`)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 200ms, 2s or 1.5m")
    if isinstance(value, int | float):
        if value != 0:
            raise ValueError(_bare_duration(value))
        seconds = 0.0
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        if m.group(2) is None and float(m.group(1)) != 0:
            raise ValueError(_bare_duration(value))
        seconds = float(m.group(1)) * _FACTOR[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 200ms, 2s or 1.5m, got {value!r}")
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError(f"a duration must be finite and at most {MAX_SECONDS:g}s")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _bare_duration(value: Any) -> str:
    text = str(value).strip()
    return f"{text} has no unit: write {text}s or {text}ms (a duration needs its unit)"


def parse_percent(value: Any) -> float:
    """A fraction from "10%"; a bare number other than 0 is refused (10 or 0.1?)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            fraction = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a percentage such as 10%, got {value!r}") from None
        if not math.isfinite(fraction):
            raise ValueError(f"expected a percentage such as 10%, got {value!r}")
    elif isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        fraction = 0.0
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        meant = f"{value:g}%" if value >= 1 else f"{value * 100:g}%"
        raise ValueError(f"{value:g} has no unit: did you mean {meant}? (write the % sign)")
    else:
        raise ValueError(f"expected a percentage such as 10%, got {value!r}")
    if not 0 <= fraction <= 1:
        # A percent is a loss, a duplicate rate or a tolerance: say which bound, not which use.
        raise ValueError(f"{value}: a percentage is between 0% and 100%")
    return fraction


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(lambda s: s, return_type=float)]
Percent = Annotated[float, BeforeValidator(parse_percent)]

MIB = 1024 * 1024
MIN_MEMORY = 32 * MIB  # below this the agent itself cannot start
MAX_MEMORY = 64 * 1024 * MIB
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg])(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_FACTOR = {"k": 1024, "m": MIB, "g": 1024 * MIB}


def parse_memory(value: Any) -> int:
    """Bytes from "512m", "1g", "1.5GiB" (binary units, as Docker's); a bare number is refused
    (bytes, or megabytes?)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value:g} has no unit: write {value:g}m or {value:g}g (a size needs its unit)")
    m = _SIZE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"expected a size such as 512m or 1g, got {value!r}")
    size = int(float(m.group(1)) * _SIZE_FACTOR[m.group(2).lower()])
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise ValueError(f"{value}: memory must be between 32m and 64g")
    return size


Memory = Annotated[int, BeforeValidator(parse_memory)]


_RANGE = re.compile(r"^\s*(?:(>=|<=|>|<|==)?\s*(\d+)|(\d+)\s*\.\.\s*(\d+))\s*$")


class CountRange:
    """An inclusive range of counts, written 3, ">=3", "<5" or "2..4"."""

    __slots__ = ("high", "low", "text")

    def __init__(self, low: int, high: int | None, text: str) -> None:
        self.low, self.high, self.text = low, high, text

    def contains(self, n: int) -> bool:
        return n >= self.low and (self.high is None or n <= self.high)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"CountRange({self.text!r})"


def parse_count_range(value: Any) -> CountRange:
    if isinstance(value, CountRange):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a count cannot be negative")
        return CountRange(value, value, str(value))
    if isinstance(value, str) and (m := _RANGE.match(value)):
        if m.group(3) is not None:
            low, high = int(m.group(3)), int(m.group(4))
            if low > high:
                raise ValueError(f"empty range {value!r}")
            return CountRange(low, high, f"{low}..{high}")
        op, n = m.group(1) or "==", int(m.group(2))
        bounds = {">=": (n, None), ">": (n + 1, None), "<=": (0, n), "<": (0, n - 1), "==": (n, n)}[op]
        if bounds[1] is not None and bounds[1] < 0:
            raise ValueError(f"empty range {value!r}")
        return CountRange(bounds[0], bounds[1], value.strip())
    raise ValueError(f"expected a count such as 3, '>=3', '<5' or '2..4', got {value!r}")


Count = Annotated[CountRange, BeforeValidator(parse_count_range), PlainSerializer(str, return_type=str)]


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
