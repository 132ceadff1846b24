"""The base of every scenario model: unknown keys are errors, and a loaded scenario never changes."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def problems_at(title: str, found: Sequence[tuple[str, str, object]]) -> ValidationError:
    """One error per (key, why, value given), each at its own key under what is being
    validated (a mapping's entries): every problem of a block at once, each with its line."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{why}", {"why": why}), loc=(key,), input=given
            )
            for key, why, given in found
        ],
    )


def with_problems(exc: ValidationError, extra: ValidationError) -> ValidationError:
    """`exc`'s errors and `extra`'s as one, each kept with its type, key and words (the
    context is rendered into the words already: pydantic cannot rebuild some from it)."""
    errors = [*exc.errors(), *extra.errors()]
    return ValidationError.from_exception_data(
        exc.title,
        [
            InitErrorDetails(
                type=PydanticCustomError(e["type"], "{why}", {"why": e["msg"]}),
                loc=e["loc"],
                input=e["input"],
            )
            for e in errors
        ],
    )
