"""Addresses and subnets as a scenario writes them: as text only. YAML reads `true` and `5` as a
bool and an int, and ipaddress takes them as 0.0.0.1 and 0.0.0.5: a typo became an address that
the messages then named as if the user had written it."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated

from pydantic import BeforeValidator


def _written(value: object) -> str:
    return f"a boolean ({str(value).lower()})" if isinstance(value, bool) else f"a number ({value})"


def require_text(example: str) -> Callable[[object], object]:
    """Refuse a YAML bool or number where an address or a subnet is written."""

    def check(value: object) -> object:
        if isinstance(value, bool | int | float):
            raise ValueError(f"{_written(value)} where text such as {example} is written")
        return value

    return check


_ADDRESS = BeforeValidator(require_text("10.77.0.20 or fd77::20"))
AddressText = Annotated[ipaddress.IPv4Address | ipaddress.IPv6Address, _ADDRESS]
Address6Text = Annotated[ipaddress.IPv6Address, _ADDRESS]
SubnetText = Annotated[ipaddress.IPv4Network, BeforeValidator(require_text("10.77.0.0/24"))]
Subnet6Text = Annotated[ipaddress.IPv6Network, BeforeValidator(require_text("fd77::/64"))]
