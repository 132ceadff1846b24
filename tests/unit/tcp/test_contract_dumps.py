"""The connections' JSON is written by a reused encoder: the same text as json.dumps."""

from __future__ import annotations

import json
import math

import pytest

from orchestrator.tcp import contract

ODD = {
    "notes": ['client → server · "quoted" \\ back', "tab\there", "\u2028 line separator", ""],
    "floats": [0.1, 1e-07, 1e22, 924.6, -0.0, 3.0, 1.7e308, math.inf, -math.inf],
    "ints": [0, -1, 1 << 70],
    "nested": {"a": None, "b": True, "c": False, "d": [], "e": {}, "f": [[1, 2], {"g": 0.5}]},
    "é": "ünïcode key",
}


def test_the_reused_encoder_writes_what_json_dumps_writes() -> None:
    assert contract._dumps(ODD) == json.dumps(ODD)
    nan = contract._dumps({"x": math.nan})
    assert nan == json.dumps({"x": math.nan}) == '{"x": NaN}'


def test_without_the_c_accelerator_json_dumps_itself_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    dumps = contract._make_dumps()
    assert dumps is json.dumps
    assert dumps(ODD) == json.dumps(ODD)


def test_a_value_json_cannot_write_is_refused_as_by_json_dumps() -> None:
    with pytest.raises(TypeError):
        contract._dumps({"x": object()})
