"""Safe YAML loading that remembers the line of every key and refuses duplicate keys.

It also bounds what a hostile or clumsy file can cost, since a scenario needs little: nesting
depth, the number of values built (an alias counts as everything it stands for, so a "billion
laughs" file stops after MAX_NODES), and the length of a number. The document is composed from
the parser's events without recursion, so deep nesting is refused, never a RecursionError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError, SafeConstructor

Path = tuple[str | int, ...]

MAX_DEPTH = 64  # a scenario is about 5 levels deep
MAX_NODES = 10_000  # values, aliases expanded; the largest shipped scenario has about 150
MAX_NUMBER_CHARS = 64  # int() of a 5,000-digit number raises (and is slow on the way there)

# libyaml's parser when PyYAML was built with it: C speed on a large file. Only its events are
# used, with PyYAML's resolver; the nodes are made here.
_PARSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap"}
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Events(Protocol):
    """What is used of a PyYAML loader: its parser's events and its resolver."""

    def get_event(self) -> yaml.Event: ...
    def check_event(self, *choices: type[yaml.Event]) -> bool: ...
    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: Any) -> str: ...
    def dispose(self) -> None: ...


Stack = list[tuple[yaml.CollectionNode, str | None, list[yaml.Node]]]


class LimitError(yaml.YAMLError):
    """A document beyond what any scenario needs: an alias bomb, deep nesting, a huge number."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


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
    """Parse safely (no Python tags), then build plain data and a line map, within the limits."""
    node = _compose(text)
    located = Located(data=None)
    if node is None:
        return located
    located.lines[()] = node.start_mark.line + 1
    located.data = _Builder(located).build(node, (), 0)
    return located


def _compose(text: str) -> yaml.Node | None:
    """The single document's node graph. An anchor is known once its node is complete, so an
    alias can never point at its own ancestor: the graph has no cycles."""
    parser: _Events = _PARSER(text)
    try:
        parser.get_event()  # stream start
        if parser.check_event(yaml.StreamEndEvent):
            return None
        parser.get_event()  # document start
        node = _compose_document(parser)
        parser.get_event()  # document end
        if not parser.check_event(yaml.StreamEndEvent):
            extra = parser.get_event()
            raise ComposerError(
                None, None, "a scenario file holds one YAML document; found another", _mark(extra.start_mark)
            )
        return node
    finally:
        parser.dispose()


def _compose_document(parser: _Events) -> yaml.Node:
    anchors: dict[str, yaml.Node] = {}
    # Open collections: the node, its anchor, and its children so far (keys and values alternate).
    stack: Stack = []
    count = 0
    while True:
        event = parser.get_event()
        done: yaml.Node
        if isinstance(event, yaml.CollectionEndEvent):
            node, anchor, items = stack.pop()
            node.value = (
                items
                if isinstance(node, yaml.SequenceNode)
                else list(zip(items[::2], items[1::2], strict=True))
            )
            node.end_mark = _mark(event.end_mark)
            done = _anchor(anchors, anchor, node)
        elif isinstance(event, yaml.AliasEvent):
            done = _alias(anchors, stack, event)
        elif isinstance(event, yaml.NodeEvent):
            count += 1
            if count > MAX_NODES:
                raise _too_many(_line(event.start_mark))
            if event.anchor is not None and (
                event.anchor in anchors or any(a == event.anchor for _, a, _ in stack)
            ):
                raise ComposerError(
                    None, None, f"found duplicate anchor {event.anchor!r}", _mark(event.start_mark)
                )
            if isinstance(event, yaml.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = parser.resolve(yaml.ScalarNode, event.value, event.implicit)
                scalar = yaml.ScalarNode(
                    tag, event.value, _mark(event.start_mark), _mark(event.end_mark), event.style
                )
                done = _anchor(anchors, event.anchor, scalar)
            else:
                assert isinstance(event, yaml.CollectionStartEvent)
                kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = parser.resolve(kind, None, event.implicit)
                stack.append(
                    (kind(tag, [], _mark(event.start_mark), None, event.flow_style), event.anchor, [])
                )
                if len(stack) > MAX_DEPTH:
                    raise _too_deep(_line(event.start_mark))
                continue
        else:
            raise ComposerError(None, None, f"unexpected {type(event).__name__}", _mark(event.start_mark))
        if not stack:
            return done
        stack[-1][2].append(done)


def _anchor(anchors: dict[str, yaml.Node], anchor: str | None, node: yaml.Node) -> yaml.Node:
    if anchor is not None:
        anchors[anchor] = node
    return node


def _alias(
    anchors: dict[str, yaml.Node],
    stack: Stack,
    event: yaml.AliasEvent,
) -> yaml.Node:
    if event.anchor in anchors:
        return _Alias(anchors[event.anchor], _mark(event.start_mark))
    if any(a == event.anchor for _, a, _ in stack):
        problem = f"alias *{event.anchor} is inside its own anchor: it would never end"
    else:
        problem = f"found undefined alias {event.anchor!r}"
    raise ComposerError(None, None, problem, _mark(event.start_mark))


class _Alias(yaml.Node):
    """An alias where it is used: the value is the anchored node, the mark the alias's own, so the
    place it stands gets the alias's line (what is inside keeps the lines it was written on)."""

    def __init__(self, target: yaml.Node, mark: yaml.Mark | None) -> None:
        super().__init__("alias", target, mark, mark)


class _Builder:
    """Plain data from the node graph, counting every value built: an alias is built again at
    each use (its keys need their own lines), so the count bounds time and memory."""

    def __init__(self, located: Located) -> None:
        self.located = located
        self.count = 0
        self.constructor = SafeConstructor()
        # The line of the outermost alias being expanded: where a limit reached inside it is told.
        self.alias_line: int | None = None

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        if isinstance(node, _Alias):
            if self.alias_line is not None:
                return self.build(node.value, path, depth)
            self.alias_line = _line(node.start_mark)
            try:
                return self.build(node.value, path, depth)
            finally:
                self.alias_line = None
        self.count += 1
        if self.count > MAX_NODES:
            raise _too_many(self.where(path))
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if node.tag not in _PLAIN_TAGS:
            # Safe loading: a tag such as !!python/object is refused, never constructed.
            raise yaml.MarkedYAMLError(
                problem=f"tag {node.tag!r} is not allowed", problem_mark=node.start_mark
            )
        if depth >= MAX_DEPTH:  # reached through aliases: each one is within the limit alone
            raise _too_deep(self.where(path))
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        items = []
        for i, item in enumerate(node.value):
            child = (*path, i)
            self.located.lines[child] = item.start_mark.line + 1
            items.append(self.build(item, child, depth + 1))
        return items

    def mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_or_alias, value_node in node.value:
            key_node = key_or_alias.value if isinstance(key_or_alias, _Alias) else key_or_alias
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.MarkedYAMLError(
                    problem="a key must be a plain value", problem_mark=key_node.start_mark
                )
            if key_node.tag == _MERGE_TAG:
                raise yaml.MarkedYAMLError(
                    problem="merge keys (<<) are not supported: write the keys out",
                    problem_mark=key_node.start_mark,
                )
            key = self.build(key_node, path, depth + 1)
            child = (*path, key)
            if key in out:
                self.located.duplicates.append((child, key_or_alias.start_mark.line + 1))
            self.located.lines[child] = key_or_alias.start_mark.line + 1
            out[key] = self.build(value_node, child, depth + 1)
        return out

    def where(self, path: Path) -> int | None:
        return self.alias_line if self.alias_line is not None else self.located.line_of(path)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
            raise LimitError(
                node.start_mark.line + 1,
                f"a number of {len(node.value)} characters: a scenario's numbers have at most "
                f"{MAX_NUMBER_CHARS}",
            )
        try:
            # The safe constructors only (ints, floats, bools, null, timestamps, binary).
            return self.constructor.construct_object(node, deep=True)
        except ConstructorError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            # An explicit tag on a value it does not fit (`!!int abc`, `!!bool maybe`).
            raise yaml.MarkedYAMLError(
                problem=f"{node.value[:40]!r} is not a valid {node.tag.rsplit(':', 1)[-1]}",
                problem_mark=node.start_mark,
            ) from None


def _mark(mark: object) -> yaml.Mark | None:
    """libyaml's marks have the same fields as PyYAML's (line, column): only the type differs."""
    return cast("yaml.Mark | None", mark)


def _line(mark: object) -> int | None:
    found = _mark(mark)
    return found.line + 1 if found is not None else None


def _too_many(line: int | None) -> LimitError:
    return LimitError(
        line,
        f"more than {MAX_NODES} values (an alias counts as all it stands for): "
        "far more than a scenario needs",
    )


def _too_deep(line: int | None) -> LimitError:
    return LimitError(line, f"nested more than {MAX_DEPTH} levels deep: far more than a scenario needs")
