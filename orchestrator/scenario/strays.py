"""YAML booleans where a number or text is written. pydantic's lax mode reads `port: yes` as
port 1 and `tcp_retries2: true` as 1, silently; the loader tells each one by its key, beside
the model's own problems."""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, PlainValidator, WrapValidator

from orchestrator.scenario.leaf import pick_member

Path = tuple[str | int, ...]
# A value read by the field's own function first (a duration's text, `timer: on`) is its to judge.
_OWN_READERS = (BeforeValidator, PlainValidator, WrapValidator)


def find_stray_bools(data: object, ann: Any) -> Iterator[tuple[Path, bool]]:
    """Each bool in `data` where the type `ann` (a model's, to begin with) holds no bool."""
    yield from _walk(data, ann, ())


def _walk(value: object, ann: Any, path: Path) -> Iterator[tuple[Path, bool]]:
    origin = get_origin(ann)
    if origin is Annotated:
        if not _reads_itself(ann):
            yield from _walk(value, get_args(ann)[0], path)
    elif origin in (Union, types.UnionType):
        yield from _walk_union(value, [a for a in get_args(ann) if a is not type(None)], path)
    elif isinstance(ann, type) and issubclass(ann, BaseModel):
        if isinstance(value, dict):
            judged = _self_judged(ann)
            for key, item in value.items():
                field = ann.model_fields.get(key) if isinstance(key, str) else None
                if field is not None and key not in judged and not _reads_itself_meta(field.metadata):
                    yield from _walk(item, field.annotation, (*path, key))
    elif origin is dict and isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, get_args(ann)[1], (*path, key))
    elif origin is list and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, get_args(ann)[0], (*path, i))
    elif isinstance(value, bool) and not _holds_bool(ann):
        yield path, value


def _walk_union(value: object, members: list[Any], path: Path) -> Iterator[tuple[Path, bool]]:
    if isinstance(value, bool):
        if not any(_holds_bool(m) or _reads_itself(m) for m in members):
            yield path, value
        return
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    if isinstance(value, dict) and models:
        yield from _walk(value, pick_member(models, value), path)
    elif len(members) == 1:
        yield from _walk(value, members[0], path)


def _holds_bool(ann: Any) -> bool:
    origin = get_origin(ann)
    if origin is Annotated:
        return _holds_bool(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        return any(_holds_bool(a) for a in get_args(ann))
    if origin is Literal:
        return any(isinstance(a, bool) for a in get_args(ann))
    return (
        ann in (bool, Any, object)
        or origin in (dict, list)
        or (isinstance(ann, type) and issubclass(ann, BaseModel))
    )


def _self_judged(model: type[BaseModel]) -> set[str]:
    """The fields a model's own `mode="before"` (or plain, wrap) validators read first."""
    found: set[str] = set()
    for dec in model.__pydantic_decorators__.field_validators.values():
        if dec.info.mode != "after":
            found.update(dec.info.fields)
    return found


def _reads_itself(ann: Any) -> bool:
    return get_origin(ann) is Annotated and _reads_itself_meta(ann.__metadata__)


def _reads_itself_meta(metadata: Iterable[object]) -> bool:
    # pydantic keeps a field's own Annotated metadata apart from its annotation.
    return any(isinstance(m, _OWN_READERS) for m in metadata)
