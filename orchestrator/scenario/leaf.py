"""One value of a scenario named by a key, as a sweep names it: resolved against the model, put
into the YAML's data, and read back from the validated scenario.

A key is written as the loader's messages write paths: `duration`, `timeline[0].at`,
`hosts.client.agent.socket.keepidle`. It is resolved against the model's types, not the file's
text, so a value the file leaves to its default can be named too. A mapping of plain values
(`sysctls`) takes the rest of the key as one name, since sysctl names have dots in them:
`hosts.client.sysctls.net.ipv4.tcp_retries2`.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator

from orchestrator.scenario.model import Scenario
from orchestrator.scenario.units import parse_duration

Path = tuple[str | int, ...]
Kind = Literal["int", "float", "duration", "other"]
# Keys a sweep may not set: each run is named after its values, and a sweep does not nest.
_RESERVED = ("name", "sweep")
_PIECE = re.compile(r"([^\[\]]*)((?:\[\d+\])*)")


class SweepKeyError(ValueError):
    """A key that names no single value of the scenario; the message says why."""


@dataclass(frozen=True)
class Leaf:
    key: str  # as written
    path: Path  # in the YAML's data
    kind: Kind  # what the value is, once validated: how a model's curve samples it


def resolve(key: str, data: Any) -> Leaf:
    """The value `key` names, or a SweepKeyError. `data` is the file's (valid) YAML."""
    parts = _split(key)
    if parts[0] in _RESERVED:
        raise SweepKeyError(f"{parts[0]} cannot be swept: each run is named after its values")
    ann: Any = Scenario
    meta: list[Any] = []
    node: Any = data
    path: list[str | int] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        shape, inner = _shape(ann, node)
        where = dotted(tuple(path))
        if shape == "model":
            fields = inner.model_fields
            if part not in fields:
                hint = difflib.get_close_matches(str(part), list(fields), n=1)
                said = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise SweepKeyError(
                    f"{dotted((*path, part))} is not a key of the scenario{said}; "
                    f"{where or 'the scenario'} has {', '.join(fields)}"
                )
            ann, meta = fields[str(part)].annotation, list(fields[str(part)].metadata)
        elif shape == "named":  # a mapping of models (hosts): the part is one of its names
            if not isinstance(node, dict) or part not in node:
                have = ", ".join(map(str, node)) if isinstance(node, dict) and node else "none"
                raise SweepKeyError(f"{where} has no {part!r}: it has {have}")
            ann, meta = inner, []
        elif shape == "plain":  # a mapping of plain values: the rest of the key is one name
            part = ".".join(map(str, parts[i:]))
            ann, meta = inner, []
            i = len(parts) - 1
        elif shape == "list":
            index = int(part) if isinstance(part, str) and part.isdigit() else part
            size = len(node) if isinstance(node, list) else 0
            if not isinstance(index, int):
                raise SweepKeyError(f"{where} is a list: name one of its items, such as {where}[0]")
            if not 0 <= index < size:
                raise SweepKeyError(f"{where} has {size} item(s): [{index}] is not one of them")
            part, ann, meta = index, inner, []
        else:
            rest = ".".join(map(str, parts[i:]))
            raise SweepKeyError(f"{where} is one value: it has no key {rest!r}")
        path.append(part)
        node = _child(node, part)
        i += 1
    if _shape(ann, node)[0] in ("model", "named", "plain"):
        raise SweepKeyError(f"{key} is a mapping, not one value: sweep one of its keys")
    return Leaf(key, tuple(path), _kind(ann, meta))


def put(data: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """A copy of `data` with `value` at `path`, the mappings on the way made if missing."""
    out = copy.deepcopy(data)
    node: Any = out
    for part in path[:-1]:
        child = _child(node, part)
        if child is None:
            child = node[part] = {}
        node = child
    node[path[-1]] = value
    return out


def read(scenario: Scenario, path: Path) -> Any:
    """The validated value at `path` (a Duration in seconds, a count as an int), or None."""
    node: Any = scenario
    for part in path:
        if isinstance(node, BaseModel):
            node = getattr(node, str(part), None)
        elif isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def dotted(path: Path) -> str:
    """A path as the loader writes it: hosts.client.agent, timeline[0].at."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _split(key: str) -> list[str | int]:
    if not key.strip():
        raise SweepKeyError("an empty key: name a value, such as hosts.client.sysctls.net.ipv4.tcp_retries2")
    parts: list[str | int] = []
    for piece in key.split("."):
        m = _PIECE.fullmatch(piece)
        if m is None or (not m.group(1) and not m.group(2)):
            raise SweepKeyError(
                f"{key!r} is not a key such as hosts.client.agent.socket.keepidle or timeline[0].at"
            )
        if m.group(1):
            parts.append(m.group(1))
        parts += [int(n) for n in re.findall(r"\d+", m.group(2))]
    return parts


def _shape(ann: Any, node: Any) -> tuple[str, Any]:
    """What a type is to a key: a model (its class), a mapping of models or of plain values, a
    list (its item type), or a value."""
    origin = get_origin(ann)
    if origin is Annotated:
        return _shape(get_args(ann)[0], node)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(ann) if a is not type(None)]
        models = [m for m in members if _shape(m, None)[0] == "model"]
        if len(members) == 1:
            return _shape(members[0], node)
        if models and (len(models) == len(members) or isinstance(node, dict)):
            return "model", pick_member([_shape(m, None)[1] for m in models], node)
        return "value", ann
    if origin is dict:
        value = get_args(ann)[1]
        return ("named" if _shape(value, None)[0] == "model" else "plain"), value
    if origin is list:
        return "list", get_args(ann)[0]
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "model", ann
    return "value", ann


def pick_member(models: list[type[BaseModel]], node: Any) -> type[BaseModel]:
    """The member of a tagged union the data is (a host by its role, a step by its fault)."""
    for m in models:
        tags = {
            n: get_args(f.annotation)
            for n, f in m.model_fields.items()
            if get_origin(f.annotation) is Literal
        }
        if isinstance(node, dict) and all(node.get(n, v[0]) in v for n, v in tags.items()):
            return m
    return models[0]


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _kind(ann: Any, meta: list[Any]) -> Kind:
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            meta = [*meta, *ann.__metadata__]
            ann = get_args(ann)[0]
        elif (
            origin in (Union, types.UnionType)
            and len(members := [a for a in get_args(ann) if a is not type(None)]) == 1
        ):
            ann = members[0]
        else:
            break
    before = [m.func for m in meta if isinstance(m, BeforeValidator)]
    if parse_duration in before:
        return "duration"
    if before:
        return "other"  # written otherwise than the model holds it (a percentage, a count range)
    if ann is int:
        return "int"
    return "float" if ann is float else "other"
