"""The run's nftables table is removed whether or not it was ever made."""

from __future__ import annotations

from typing import Any, cast

import pytest

from orchestrator.backend.docker.bridge import Bridge


class Helper:
    """A helper container whose nft answers as the kernel does for a table it does not have."""

    def __init__(self, has_table: bool) -> None:
        self.has_table = has_table
        self.removed = False
        self.commands: list[list[str]] = []

    def exec_run(self, argv: list[str]) -> tuple[int, bytes]:
        self.commands.append(argv)
        if argv[:3] == ["nft", "delete", "table"] and not self.has_table:
            return 1, b"Error: Could not process rule: No such file or directory\ndelete table bridge x"
        if argv[:3] == ["nft", "delete", "table"]:
            self.has_table = False
        return 0, b""

    def remove(self, force: bool = False) -> None:
        self.removed = force


def _bridge(helper: Helper) -> Bridge:
    bridge = Bridge(cast(Any, None), "image", "run_1", cast(Any, None), {})
    bridge._helper = cast(Any, helper)
    bridge._tables_made = True  # set before `add table`, as `_host_chain` does
    return bridge


@pytest.mark.parametrize("made", [True, False])
def test_the_table_is_gone_after_remove_made_or_not(made: bool) -> None:
    helper = Helper(has_table=made)
    bridge = _bridge(helper)
    bridge.remove()
    assert not bridge.has_table  # nothing reported left behind
    assert helper.removed
    assert ["nft", "delete", "table", "bridge", bridge.table] in helper.commands


def test_another_nft_error_still_says_so() -> None:
    class Broken(Helper):
        def exec_run(self, argv: list[str]) -> tuple[int, bytes]:
            return 1, b"Error: Operation not permitted"

    helper = Broken(has_table=True)
    bridge = _bridge(helper)
    with pytest.raises(RuntimeError, match="not permitted"):
        bridge.remove()
    assert bridge.has_table  # reported as left behind, for `tcpscen clean`
    assert helper.removed
