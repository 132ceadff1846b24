"""Safe YAML loading that remembers the line of every key, and refuses duplicate keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass
class Located:
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)

    def line_of(self, path: Path) -> int | None:
        """The line of the deepest known prefix of path (a missing key reports its parent)."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


def load_located(text: str) -> Located:
    """Parse with SafeLoader's composer (no Python tags), then build plain data and a line map."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    located = Located(data=None)
    if node is None:
        return located
    located.lines[()] = node.start_mark.line + 1
    located.data = _build(node, (), located)
    return located


_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap"}


def _build(node: yaml.Node, path: Path, located: Located) -> Any:
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        # Safe loading: a tag such as !!python/object is refused, never constructed.
        raise yaml.MarkedYAMLError(problem=f"tag {node.tag!r} is not allowed", problem_mark=node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if isinstance(key, list | dict):
                raise yaml.MarkedYAMLError(
                    problem="a key must be a plain value", problem_mark=key_node.start_mark
                )
            child = (*path, key)
            if key in out:
                located.duplicates.append((child, key_node.start_mark.line + 1))
            located.lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, located)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            located.lines[(*path, i)] = item.start_mark.line + 1
            items.append(_build(item, (*path, i), located))
        return items
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    # construct_object on a lone scalar applies the safe resolvers (ints, bools, null) and nothing else.
    constructor = yaml.SafeLoader("")
    return constructor.construct_object(node, deep=True)
