"""Load a scenario file: every mistake reported at once, with file:line and key path."""

from __future__ import annotations

import copy
import difflib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator.errors import Problem, ScenarioError
from orchestrator.scenario import expect, middlebox, model, program, selection, socket_expect, sockopts, steps
from orchestrator.scenario.routes import Route
from orchestrator.scenario.source import MAX_BYTES, read_source
from orchestrator.scenario.strays import find_stray_bools
from orchestrator.scenario.validation import find_problems, find_route_problems
from orchestrator.scenario.yamlpos import LimitError, Located, load_located

MAX_PRUNING_ROUNDS = 4  # each round takes out what the last one's model refused

__all__ = ["MAX_BYTES", "load_scenario", "locate", "make_scenario", "parse_scenario"]


def load_scenario(path: Path, routes: Sequence[Route] | None = None) -> model.Scenario:
    """The scenario in a file. With `routes` (the host's routing table), its subnet is also
    checked against the host's own networks: `validate` and `run` pass them, nothing else.
    A sweep's values are each checked too, as the file with that value would be."""
    file = str(path)
    located = locate(read_source(path), file)
    if is_compose(located.data):
        raise ScenarioError([Problem(file, located.line_of(("services",)), "services", COMPOSE_FILE)])
    scenario = make_scenario(located, file, path.stem, routes, path.resolve().parent)
    if scenario.sweep is not None:
        from orchestrator.scenario.sweep import expand  # noqa: PLC0415 - sweep.py imports this module

        expand(located, file, path.stem, routes, path.resolve().parent)
    return scenario


COMPOSE_FILE = (
    "a Compose file, not a scenario: a scenario names it (`compose: <this file>`) and says which "
    "service each of its hosts is (`hosts.<name>.service`)"
)


def is_compose(data: object) -> bool:
    """Whether a YAML document is a Compose project's, not a scenario: services, and no hosts."""
    return isinstance(data, dict) and "services" in data and "hosts" not in data


def is_compose_file(path: Path) -> bool:
    """Whether a file is a Compose project's (a folder of scenarios may hold one beside them).
    A file that cannot be read or parsed is not: the loader says what is wrong with it."""
    try:
        text = read_source(path)
        # Parsed only where the key can be: `expand` asks for every file of a folder, several
        # times a command (about 2 ms a scenario to parse).
        return "services" in text and is_compose(yaml.safe_load(text))
    except (ScenarioError, yaml.YAMLError):
        return False


def make_scenario(
    located: Located, file: str, default_name: str, routes: Sequence[Route] | None, folder: Path
) -> model.Scenario:
    """The scenario in located YAML, checked as a file is: the model and the whole-file checks,
    the subnet against `routes`, its paths anchored in `folder`, its Compose file's services."""
    scenario = anchor_paths(parse_scenario(located, file, default_name=default_name, routes=routes), folder)
    if scenario.compose is not None:
        from orchestrator.programs.compose import scenario_problems  # noqa: PLC0415 - only with Compose

        found = scenario_problems(scenario)
        if found:
            raise ScenarioError(
                [Problem(file, located.line_of(key), _dotted(key), msg) for key, msg in found]
            )
    return scenario


def anchor_paths(scenario: model.Scenario, folder: Path) -> model.Scenario:
    """The paths a scenario gives (its Compose file, a program's build context) are relative to
    the scenario file's folder; from here on they are absolute."""
    hosts = dict(scenario.hosts)
    for name, host in scenario.hosts.items():
        program = host.program
        if program is not None and program.build is not None:
            build = program.build.model_copy(update={"context": str(folder / program.build.context)})
            hosts[name] = host.model_copy(update={"program": program.model_copy(update={"build": build})})
    compose = str(folder / scenario.compose) if scenario.compose else None
    return scenario.model_copy(update={"hosts": hosts, "compose": compose})


def locate(text: str, file: str) -> Located:
    """The YAML's data and the line of every key; any problem with the text is a ScenarioError."""
    try:
        return load_located(text)
    except LimitError as exc:
        raise ScenarioError([Problem(file, exc.line, "", exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ScenarioError([Problem(file, line, "", f"not valid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(file, None, "", f"not valid YAML: {exc}")]) from None


def parse_scenario(
    located: Located, file: str, default_name: str = "scenario", routes: Sequence[Route] | None = None
) -> model.Scenario:
    problems = [
        Problem(file, line, _dotted(key), "duplicate key (the later one would silently win)")
        for key, line in located.duplicates
    ]
    data = located.data
    if not isinstance(data, dict):
        problems.append(
            Problem(file, located.line_of(()), "", "a scenario is a mapping of keys (name, hosts, ...)")
        )
        raise ScenarioError(problems)
    data = {"name": default_name, **data}
    problems += [
        Problem(
            file,
            located.line_of(key),
            _dotted(key),
            f"a boolean ({str(b).lower()}) where a number or text is written",
        )
        for key, b in find_stray_bools(data, model.Scenario)
    ]
    try:
        scenario = model.Scenario.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(err, located, file) for err in _branches_merged(exc.errors())]
        problems += _problems_beyond(data, exc, located, file, routes)
        raise ScenarioError(problems) from None
    found = find_problems(scenario)
    if routes is not None:
        found += find_route_problems(scenario, routes)
    problems += [Problem(file, located.line_of(key), _dotted(key), msg) for key, msg in found]
    if problems:
        raise ScenarioError(problems)
    return scenario


def _problems_beyond(
    data: dict[str, Any],
    exc: ValidationError,
    located: Located,
    file: str,
    routes: Sequence[Route] | None,
) -> list[Problem]:
    """The whole-file checks, which need a valid model, on the file without what was already
    reported: so that a typo does not hide an address outside its subnet. A mistaken key is
    taken out, and then an object that no longer validates without it (an app's expectation
    left empty), but never a host or a network (others name them) nor a list's item (the items
    after it would be misnumbered). No problem about an object something was taken from (or
    its parents) is told: it may only be the taken key's."""
    pruned = copy.deepcopy(data)
    removed: list[tuple[str | int, ...]] = []
    errors = exc.errors()
    out: list[Problem] = []
    for round_ in range(MAX_PRUNING_ROUNDS):
        for err in errors:
            path = _data_path(tuple(err["loc"]), pruned)
            if round_ and err["type"] != "missing" and not _near(path, removed):
                out.append(_problem(err, located, file))  # one the first pass could not reach
                continue
            if not _stand_in(pruned, path) and (not _can_drop(path) or not _drop(pruned, path)):
                return out
            removed.append(path)
        try:
            scenario = model.Scenario.model_validate(pruned)
        except ValidationError as again:
            errors = again.errors()
            continue
        found = find_problems(scenario)
        if routes is not None:
            found += find_route_problems(scenario, routes)
        return out + [
            Problem(file, located.line_of(key), _dotted(key), msg)
            for key, msg in found
            if not _near(tuple(key), removed) and not _after_stand_in(tuple(key), removed, pruned)
        ]
    return out


def _branches_merged(errors: list[Any]) -> list[Any]:
    """A value that fits no branch of `Literal[...] | T` (`at: predicted` or a duration) comes
    from pydantic as one error per branch at the same key: "Input should be 'predicted'" beside
    the duration's own reason. One problem says both: T's reason, then the word it could be."""
    words = {
        tuple(e["loc"][:-1]): e
        for e in errors
        if e["type"] == "literal_error" and len(e["loc"]) > 1 and str(e["loc"][-1]).startswith("literal[")
    }
    said: set[int] = set()  # the literal errors told within another branch's problem
    out: list[Any] = []
    for err in errors:
        word = words.get(tuple(err["loc"][:-1]))
        if word is not None and word is not err and isinstance(err["loc"][-1], str):
            said.add(id(word))
            out.append({**err, "msg": f"{err['msg']} (or {word.get('ctx', {}).get('expected', '')})"})
        else:
            out.append(err)
    return [e for e in out if id(e) not in said]


# A step no whole-file check finds fault with (heal needs no app state), put in place of one the
# model refused, so the steps after it keep their numbers.
_NEUTRAL_STEP = "heal"


def _stand_in(data: Any, path: tuple[str | int, ...]) -> bool:
    """A required value the model refused, replaced by one that raises no problem of its own:
    the duration by the longest (so no step is said to fall beyond it), a step by a heal of the
    same host at the same moment. Measured: a duration without its unit, or a misspelt fault,
    hid every whole-file problem (an unknown host, an event the app never reports, ...)."""
    if path == ("duration",) and isinstance(data, dict) and "duration" in data:
        data["duration"] = f"{model.MAX_DURATION_S:g}s"
        return True
    if len(path) >= 2 and path[0] == "timeline" and isinstance(path[1], int):
        items = data.get("timeline") if isinstance(data, dict) else None
        if (
            not isinstance(items, list)
            or not 0 <= path[1] < len(items)
            or not isinstance(items[path[1]], dict)
        ):
            return False
        step = items[path[1]]
        if step.get("fault") == _NEUTRAL_STEP:
            return False  # already stood in: what is left is the host or the time itself
        kept = {k: v for k, v in step.items() if k in ("host", "at", "after")}
        items[path[1]] = {**kept, "fault": _NEUTRAL_STEP}
        return True
    return False


def _after_stand_in(key: tuple[str | int, ...], removed: list[tuple[str | int, ...]], data: Any) -> bool:
    """Whether a problem is about a later step of a host one of whose steps stood in as a heal:
    the step it replaced may have been the pause or power off the later one needs."""
    if len(key) < 2 or key[0] != "timeline" or not isinstance(key[1], int):
        return False
    items = data.get("timeline") if isinstance(data, dict) else None
    if not isinstance(items, list) or not 0 <= key[1] < len(items) or not isinstance(items[key[1]], dict):
        return False
    host = items[key[1]].get("host")
    return any(
        len(r) >= 2
        and r[0] == "timeline"
        and isinstance(r[1], int)
        and r[1] < key[1]
        and isinstance(items[r[1]], dict)
        and items[r[1]].get("host") == host
        for r in removed
    )


def _can_drop(path: tuple[str | int, ...]) -> bool:
    named = len(path) == 2 and path[0] in ("hosts", "networks")
    return bool(path) and not isinstance(path[-1], int) and not named and path != ("name",)


def _drop(data: Any, path: tuple[str | int, ...]) -> bool:
    node = data
    for part in path[:-1]:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_dict or in_list):
            return False
        node = node[part]
    if isinstance(node, dict) and path[-1] in node:
        del node[path[-1]]
        return True
    return False


def _near(key: tuple[str | int, ...], removed: list[tuple[str | int, ...]]) -> bool:
    """Whether a problem is about what was taken out, or an object it was taken from."""
    return any(key[: len(r)] == r or r[: len(key)] == key for r in removed)


def _problem(err: Any, located: Located, file: str) -> Problem:
    path = _data_path(tuple(err["loc"]), located.data)
    line = located.line_of(path)
    if err["type"] == "extra_forbidden":
        key = path[-1] if path else ""
        hint = difflib.get_close_matches(str(key), _known_keys(), n=1)
        if hint and hint[0] == key:  # a right key in the wrong place: say where it goes
            owners = _owners(str(key))
            suggestion = f" here ({key!r} is a key of {' or '.join(owners)})" if owners else " here"
        else:
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return Problem(file, line, _dotted(path), f"unknown key{suggestion}")
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", "")
        choices = (
            steps.FAULT_NAMES
            if "fault" in str(err.get("ctx", {}).get("discriminator"))
            else ("server", "client", "router")
        )
        hint = difflib.get_close_matches(str(tag), choices, n=1)
        message = f"unknown {tag!r}; expected one of {', '.join(choices)}" + (
            f" (did you mean {hint[0]!r}?)" if hint else ""
        )
        path = (*path, "fault" if choices is steps.FAULT_NAMES else "role")
    elif err["type"] == "union_tag_not_found":
        message = "needs " + (
            "a 'fault' key" if path and path[0] == "timeline" else "a 'role' (server, client or router)"
        )
    return Problem(file, line, _dotted(path), message)


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[str | int, ...]:
    """Pydantic locations include union tags ('kill', 'server'); keep only the parts in the YAML."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and part[:1].islower() and part not in _tags():
            path.append(part)  # a missing or unknown key: name it, the line comes from its parent
            node = None
    return tuple(path)


def _tags() -> set[str]:
    return {*steps.FAULT_NAMES, "server", "client", "router"}


def _owners(key: str) -> list[str]:
    """The keys whose values may hold `key` (`socket` -> `agent`), for a key in the wrong place."""
    models = _models()
    holders = [m for m in models if key in m.model_fields]
    found = {
        f"{name}:"
        for m in models
        for name, info in m.model_fields.items()
        if any(h in _types_in(info.annotation) for h in holders)
    }
    return sorted(found)


def _types_in(annotation: Any) -> set[Any]:
    out = {annotation}
    for arg in typing.get_args(annotation):
        out |= _types_in(arg)
    return out


def _known_keys() -> list[str]:
    return sorted({key for m in _models() for key in m.model_fields})


def _models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for obj in [
        *vars(model).values(),
        *vars(expect).values(),
        *vars(selection).values(),
        *vars(socket_expect).values(),
        *vars(steps).values(),
        *vars(program).values(),
        *vars(sockopts).values(),
        *vars(middlebox).values(),
    ]:
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj not in found:
            found.append(obj)
    return found


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
