"""Suite-wide ordering: a test marked `last(n)` runs after every unmarked one, in order of n
(the engine restart, then the leftovers check), whatever its file is named."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        mark = item.get_closest_marker("last")
        return int(mark.args[0]) if mark is not None else 0

    items.sort(key=rank)  # stable: the rest keep their order
