"""Property: a random document of maps, lists, scalars, anchors and aliases either loads to exactly
what PyYAML's safe_load makes of it (when it is within the limits), or is a clean ScenarioError
(when it is not), quickly and in bounded memory; never another exception."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass, field

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orchestrator.errors import ScenarioError
from orchestrator.scenario import yamlpos
from orchestrator.scenario.loader import locate
from orchestrator.scenario.yamlpos import MAX_DEPTH, MAX_NODES, MAX_NUMBER_CHARS

PARSERS = [yaml.SafeLoader, *([yaml.CSafeLoader] if yaml.__with_libyaml__ else [])]
# Plain scalars of every resolved kind (PyYAML decides what they are, on both sides).
SCALARS = [
    "1", "-7", "0x1f", "0o17", "1_000", "1.5", "-.inf", "true", "no", "null", "~", "abc", "2s",
    "10.77.0.1", "2001-12-14", "server:7000", "'quoted, with: colon'", '"dq \\u00e9"', "''",
    "1" * MAX_NUMBER_CHARS, "1" * (MAX_NUMBER_CHARS + 1), "9" * 5_000, "1.0" + "0" * 80,
]  # fmt: skip
KEYS = ["a", "b", "name", "hosts", "1", "yes", "x-y", "'q k'"]


@dataclass
class Doc:
    """What the generator knows of the document it writes: the text, and what it costs."""

    anchors: dict[str, tuple[int, int, bool]] = field(default_factory=dict)  # name: nodes, depth, huge
    nodes: int = 0


@dataclass(frozen=True)
class Part:
    text: str
    nodes: int  # values built, aliases expanded (keys count, as in the loader)
    depth: int  # collections nested on the deepest path, through aliases
    huge: bool  # holds a number over the length limit
    flow: bool = True  # fits on one line (else a block collection, on lines of its own)
    anchor: str = ""  # "&a1 ", written before the node (on its parent's line for a block)

    def inline(self) -> str:
        """As a flow value (inside a flow collection, only flow ones are drawn)."""
        assert self.flow
        return self.anchor + self.text

    def after(self, head: str) -> str:
        """After a parent's `- ` or `key: `."""
        return (
            head + self.anchor + self.text if self.flow else (head + self.anchor).rstrip() + "\n" + self.text
        )


def _scalar(token: str) -> Part:
    huge = token.lstrip("-").replace(".", "").isdigit() and len(token) > MAX_NUMBER_CHARS
    return Part(token, 1, 0, huge)


@st.composite
def parts(draw: st.DrawFn, doc: Doc, budget: int, indent: int, flow_only: bool) -> Part:
    """A node, in flow or block style, maybe anchored, maybe an alias to an anchor already complete."""
    choices = ["scalar", "alias"] if doc.anchors else ["scalar"]
    if budget > 0:
        choices += ["list", "map", "wrap"]
    kind = draw(st.sampled_from(choices))
    if kind == "scalar":
        part = _scalar(draw(st.sampled_from(SCALARS)))
    elif kind == "alias":
        name = draw(st.sampled_from(sorted(doc.anchors)))
        nodes, depth, huge = doc.anchors[name]
        return Part(f"*{name}", nodes, depth, huge)
    elif kind == "wrap":  # deep nesting cheaply: [[[ ... ]]]
        levels = draw(st.integers(1, MAX_DEPTH + 8))
        inner = draw(parts(doc, 0, indent, True))
        part = Part(
            "[" * levels + inner.inline() + "]" * levels,
            inner.nodes + levels,
            inner.depth + levels,
            inner.huge,
        )
    else:
        block = not flow_only and draw(st.booleans())
        children = []
        for _ in range(draw(st.integers(0, 4))):
            children.append(draw(parts(doc, budget - 1, indent + 2, not block)))
        part = _collection(kind, children, block, indent, draw)
    if draw(st.integers(0, 3)) == 0:
        name = f"a{len(doc.anchors)}"
        doc.anchors[name] = (part.nodes, part.depth, part.huge)
        part = Part(part.text, part.nodes, part.depth, part.huge, part.flow, f"&{name} ")
    return part


def _collection(kind: str, children: list[Part], block: bool, indent: int, draw: st.DrawFn) -> Part:
    nodes = 1 + sum(c.nodes for c in children)
    depth = 1 + max((c.depth for c in children), default=0)
    huge = any(c.huge for c in children)
    if kind == "map":
        keys = [draw(st.sampled_from(KEYS)) for _ in children]
        nodes += len(children)  # each key is a value built
    if not block or not children:
        if kind == "list":
            return Part("[" + ", ".join(c.inline() for c in children) + "]", nodes, depth, huge)
        inner = ", ".join(f"{k}: {c.inline()}" for k, c in zip(keys, children, strict=True))
        return Part(f"{{{inner}}}", nodes, depth, huge)
    pad = " " * indent
    heads = [f"{pad}- " if kind == "list" else f"{pad}{keys[i]}: " for i in range(len(children))]
    lines = [c.after(head) for head, c in zip(heads, children, strict=True)]
    return Part("\n".join(lines), nodes, depth, huge, flow=False)


@st.composite
def documents(draw: st.DrawFn) -> Part:
    doc = Doc()
    part = draw(parts(doc, draw(st.integers(1, 5)), 0, False))
    bomb = draw(st.integers(0, 2)) == 0
    layers = draw(st.integers(3, 9) if bomb else st.integers(0, 4))
    if not part.flow or layers == 0:
        return Part(part.after(""), part.nodes, part.depth, part.huge)
    # Layers of aliases of the anchors so far, each layer anchored in turn: a "billion laughs"
    # when the layers are many and wide, a plain reuse of values when they are few.
    items = [part]
    if not doc.anchors:
        doc.anchors["z"] = (1, 0, False)
        items.append(Part("lol", 1, 0, False, anchor="&z "))
    for layer in range(layers):
        width = draw(st.integers(2, 12) if bomb else st.integers(1, 4))
        if layer and (bomb or draw(st.booleans())):  # the layer below, many times: the growth is exponential
            names = [f"b{layer - 1}"] * width
        else:
            names = [draw(st.sampled_from(sorted(doc.anchors))) for _ in range(width)]
        nodes = 1 + sum(doc.anchors[n][0] for n in names)
        depth = 1 + max(doc.anchors[n][1] for n in names)
        huge = any(doc.anchors[n][2] for n in names)
        doc.anchors[f"b{layer}"] = (nodes, depth, huge)
        text = "[" + ", ".join(f"*{n}" for n in names) + "]"
        items.append(Part(text, nodes, depth, huge, anchor=f"&b{layer} "))
    return Part(
        "[" + ", ".join(i.inline() for i in items) + "]",
        1 + sum(i.nodes for i in items),
        1 + max(i.depth for i in items),
        any(i.huge for i in items),
    )


def _limits_passed(doc: Part) -> str:
    over = [
        what
        for what, beyond in (
            ("nodes", doc.nodes > MAX_NODES),
            ("depth", doc.depth > MAX_DEPTH),
            ("number", doc.huge),
        )
        if beyond
    ]
    return "beyond: " + ", ".join(over) if over else "within the limits"


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(doc=documents())
def test_random_documents_load_as_safe_load_or_fail_cleanly(
    parser: type[yaml.SafeLoader], doc: Part, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference is PyYAML's safe loading with the same parser (libyaml's or PyYAML's own):
    only what the loader adds is under test, not the two parsers' differences."""
    monkeypatch.setattr(yamlpos, "_PARSER", parser)
    within = doc.nodes <= MAX_NODES and doc.depth <= MAX_DEPTH and not doc.huge
    valid = True
    if within:  # safe_load itself is only safe within the limits
        try:
            expected = yaml.load(doc.text, Loader=parser)
        except yaml.YAMLError:
            valid = False
    event(_limits_passed(doc))
    event("aliases" if "*" in doc.text else "no alias")
    tracemalloc.start()
    start = time.monotonic()
    try:
        located = locate(doc.text, "p.yaml")
    except ScenarioError as exc:
        assert not (within and valid), f"{doc.nodes} nodes, depth {doc.depth}: refused with {exc}\n{doc.text}"
        assert exc.problems and all(p.file == "p.yaml" and p.message for p in exc.problems)
    else:
        assert within, f"{doc.nodes} nodes, depth {doc.depth}, huge {doc.huge}: loaded\n{doc.text}"
        assert valid and located.data == expected, doc.text
    finally:
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 20.0, f"{elapsed:.2f} s: a hang, not a slow machine"  # a guard, not a target
    assert peak < 64 * 1024 * 1024, f"{peak} bytes at the peak"
