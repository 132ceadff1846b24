"""The YAML reader's bounds: alias bombs, deep nesting, cycles, huge numbers and bad tags are a
clean ScenarioError with a line, quickly, with libyaml's parser and with PyYAML's own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import yaml

from orchestrator.errors import ScenarioError
from orchestrator.scenario import yamlpos
from orchestrator.scenario.loader import locate
from orchestrator.scenario.yamlpos import MAX_DEPTH, MAX_NODES, MAX_NUMBER_CHARS, load_located

PARSERS = [yaml.SafeLoader, *([yaml.CSafeLoader] if yaml.__with_libyaml__ else [])]


@pytest.fixture(params=PARSERS, ids=lambda p: p.__name__, autouse=True)
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(yamlpos, "_PARSER", request.param)
    yield


def refused(text: str) -> tuple[int | None, str]:
    start = time.monotonic()
    with pytest.raises(ScenarioError) as caught:
        locate(text, "t.yaml")
    # A guard against a hang or a blow-up, not a speed target (the abuse suite times the CLI).
    assert time.monotonic() - start < 10.0, "a refusal must not hang"
    [problem] = caught.value.problems
    assert problem.file == "t.yaml"
    return problem.line, problem.message


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ['l0: &l0 ["lol"' + ', "lol"' * (width - 1) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_billion_laughs_stops_at_the_node_limit() -> None:
    line, message = refused(billion_laughs())
    assert f"more than {MAX_NODES} values" in message
    assert line is not None and 2 <= line <= 9


def test_aliases_within_the_limit_expand_as_pyyaml_does() -> None:
    text = billion_laughs(levels=3, width=3)
    assert load_located(text).data == yaml.safe_load(text)
    located = load_located(text)
    assert located.lines[("l2", 0)] == 3  # where the alias *l1 stands
    assert located.lines[("l2", 0, 1)] == 2  # inside it: where l1's second value is written


@pytest.mark.parametrize(
    "text",
    [
        "[" * 20_000 + "]" * 20_000,
        "{a: " * 5_000 + "1" + "}" * 5_000,
        "".join(f"{' ' * i}- \n" for i in range(200)),
    ],
    ids=["brackets", "flow-maps", "block-lists"],
)
def test_deep_nesting_is_refused_not_a_recursion_error(text: str) -> None:
    line, message = refused(text)
    assert "nested more than" in message or "maximum nesting depth" in message  # ours, or libyaml's own
    assert line is not None


def test_nesting_at_the_limit_loads() -> None:
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert load_located(text).data == yaml.safe_load(text)
    _, message = refused("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert f"nested more than {MAX_DEPTH} levels" in message


def test_depth_through_aliases_counts() -> None:
    half = MAX_DEPTH // 2 + 1
    text = f"a: &a {'[' * half}1{']' * half}\nb: {'[' * half}*a{']' * half}\n"
    line, message = refused(text)
    assert f"nested more than {MAX_DEPTH} levels" in message and line == 2


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    assert refused("a: &a [1, *a]\n") == (
        1,
        "not valid YAML: alias *a is inside its own anchor: it would never end",
    )
    assert refused("a: *nowhere\n")[1] == "not valid YAML: found undefined alias 'nowhere'"
    assert "duplicate anchor" in refused("a: &x 1\nb: &x 2\n")[1]


@pytest.mark.parametrize(
    "number", ["1" * 5_000, "-" + "9" * 4_301, "0x" + "f" * 100, "1" * 65, "1.5" + "0" * 100]
)
def test_huge_numbers_are_refused_with_a_message(number: str) -> None:
    line, message = refused(f"name: x\nduration: {number}\n")
    assert line == 2
    assert (
        message
        == f"a number of {len(number)} characters: a scenario's numbers have at most {MAX_NUMBER_CHARS}"
    )


def test_long_strings_of_digits_that_are_strings_are_fine() -> None:
    assert load_located(f"a: '{'1' * 5_000}'\n").data == {"a": "1" * 5_000}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!int abc\n", "not valid YAML: 'abc' is not a valid int"),
        ("a: !!float abc\n", "not valid YAML: 'abc' is not a valid float"),
        ("a: !!bool maybe\n", "not valid YAML: 'maybe' is not a valid bool"),
        ("a: !!timestamp 2020-13-45\n", "not valid YAML: '2020-13-45' is not a valid timestamp"),
        (
            "a: !!python/object:os.system {}\n",
            "not valid YAML: tag 'tag:yaml.org,2002:python/object:os.system' is not allowed",
        ),
        ("a: !!python/name:os.system x\n", None),
        ("? [a]\n: 1\n", "not valid YAML: a key must be a plain value"),
        (
            "base: &b {x: 1}\nuse:\n  <<: *b\n",
            "not valid YAML: merge keys (<<) are not supported: write the keys out",
        ),
        ("a: 1\n---\nb: 2\n", "not valid YAML: a scenario file holds one YAML document; found another"),
    ],
)
def test_bad_tags_and_shapes_are_clean_errors(text: str, message: str | None) -> None:
    line, found = refused(text)
    assert line is not None
    if message is not None:
        assert found == message
    else:
        assert found.startswith("not valid YAML: ")


def test_many_values_in_a_big_file_are_refused_quickly() -> None:
    text = "[" + "1," * 120_000 + "1]"  # 240 kB, within the size limit
    _, message = refused(text)
    assert f"more than {MAX_NODES} values" in message
