"""Sweeps: a key names one value of the scenario; each value, and each combination, is checked as
a scenario file would be, every problem at once with the sweep's own line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import ScenarioError
from orchestrator.scenario import leaf
from orchestrator.scenario.loader import load_scenario
from orchestrator.scenario.sweep import MAX_KEYS, MAX_RUNS, load_sweep

ROOT = Path(__file__).resolve().parents[3]

BASE = """\
name: cut
duration: 2m
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: echo, port: 7000}}
  client:
    role: client
    address: 10.77.0.20
    sysctls: {net.ipv4.tcp_retries2: 5}
    agent: {mode: send, connect: "server:7000", every: 200ms}
timeline:
  - {after: client.connected, at: 1s, fault: disconnect, host: server}
"""


def write(tmp_path: Path, sweep: str, base: str = BASE) -> Path:
    path = tmp_path / "cut.yaml"
    path.write_text(base + "sweep:\n" + sweep)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    return [str(p) for p in exc.value.problems]


def test_one_key_makes_a_run_per_value(tmp_path: Path) -> None:
    path = write(tmp_path, "  hosts.client.sysctls.net.ipv4.tcp_retries2: [3, 5, 8]\n")
    sweep = load_sweep(path)
    assert [p.label for p in sweep.points] == ["tcp_retries2=3", "tcp_retries2=5", "tcp_retries2=8"]
    assert [p.scenario.name for p in sweep.points] == [f"cut[tcp_retries2={n}]" for n in (3, 5, 8)]
    assert [p.scenario.hosts["client"].sysctls["net.ipv4.tcp_retries2"] for p in sweep.points] == [3, 5, 8]
    assert [p.settings for p in sweep.points] == [(3.0,), (5.0,), (8.0,)]
    assert sweep.keys[0].leaf.kind == "int"
    # The rest of the file is untouched, and the file alone loads as its base.
    assert all(p.scenario.timeline == sweep.points[0].scenario.timeline for p in sweep.points)
    assert load_scenario(path).hosts["client"].sysctls["net.ipv4.tcp_retries2"] == 5


def test_several_keys_make_the_cartesian_product(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  hosts.client.agent.socket.keepidle: [1s, 2s, 5s]\n  hosts.client.agent.socket.keepcnt: [2, 3]\n",
    )
    sweep = load_sweep(path)
    assert len(sweep.points) == 6
    assert sweep.points[0].label == "keepidle=1s,keepcnt=2"
    assert sweep.points[-1].label == "keepidle=5s,keepcnt=3"
    socket = sweep.points[3].scenario.hosts["client"].socket_options
    assert (socket.keepidle, socket.keepcnt) == (2.0, 3)
    assert sweep.points[3].settings == (2.0, 3.0)
    assert sweep.keys[0].leaf.kind == "duration"


def test_a_value_the_file_leaves_to_its_default_can_be_swept(tmp_path: Path) -> None:
    base = BASE.replace("    sysctls: {net.ipv4.tcp_retries2: 5}\n", "")
    path = write(tmp_path, "  hosts.client.sysctls.net.ipv4.tcp_keepalive_time: [2, 4]\n", base)
    sweep = load_sweep(path)
    assert [p.scenario.hosts["client"].sysctls for p in sweep.points] == [
        {"net.ipv4.tcp_keepalive_time": 2},
        {"net.ipv4.tcp_keepalive_time": 4},
    ]


def test_list_items_by_index_both_ways(tmp_path: Path) -> None:
    for key in ("timeline[0].at", "timeline.0.at"):
        sweep = load_sweep(write(tmp_path, f"  {key}: [1s, 3s]\n"))
        assert [p.scenario.timeline[0].at for p in sweep.points] == [1.0, 3.0]
        assert sweep.points[0].label == "at=1s"


def test_labels_tell_apart_keys_with_the_same_name(tmp_path: Path) -> None:
    text = BASE.replace("agent: {mode: echo, port: 7000}", "agent: {mode: echo, port: 7000, socket: {}}")
    path = write(
        tmp_path,
        "  hosts.client.agent.socket.keepcnt: [2]\n  hosts.server.agent.socket.keepcnt: [3, 4]\n",
        text,
    )
    assert [p.label for p in load_sweep(path).points] == [
        "client.agent.socket.keepcnt=2,server.agent.socket.keepcnt=3",
        "client.agent.socket.keepcnt=2,server.agent.socket.keepcnt=4",
    ]


def test_unknown_paths_are_all_reported_at_their_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  hosts.client.agent.sockt.keepidle: [1s]\n"  # line 13
        "  hosts.nobody.sysctls.net.ipv4.tcp_retries2: [3]\n"
        "  timeline[4].at: [1s]\n"
        "  hosts.client.agent: [1]\n"
        "  duration.seconds: [1]\n"
        "  name: [a, b]\n",
    )
    found = problems(path)
    f = str(path)
    assert found == [
        f"{f}:13: sweep.hosts.client.agent.sockt.keepidle: hosts.client.agent.sockt is not a key of the "
        "scenario (did you mean 'socket'?); hosts.client.agent has mode, connect, every, size, send_after, "
        "count, close_after, socket, connections",
        f"{f}:14: sweep.hosts.nobody.sysctls.net.ipv4.tcp_retries2: hosts has no 'nobody': "
        "it has server, client",
        f"{f}:15: sweep.timeline[4].at: timeline has 1 item(s): [4] is not one of them",
        f"{f}:16: sweep.hosts.client.agent: hosts.client.agent is a mapping, not one value: "
        "sweep one of its keys",
        f"{f}:17: sweep.duration.seconds: duration is one value: it has no key 'seconds'",
        f"{f}:18: sweep.name: name cannot be swept: each run is named after its values",
    ]


def test_values_a_leaf_refuses_are_each_reported_at_the_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  hosts.client.sysctls.net.ipv4.tcp_retries2: [3, -1, x]\n"  # line 13
        "  hosts.client.agent.socket.keepidle:\n"
        "    - 1s\n"
        "    - 2\n"  # line 16
        "    - 1.5s\n",
    )
    f = str(path)
    assert problems(path) == [
        f"{f}:13: sweep.hosts.client.sysctls.net.ipv4.tcp_retries2[1]: -1: "
        "-1 is not a value the kernel takes (0 to 2147483647)",
        f"{f}:13: sweep.hosts.client.sysctls.net.ipv4.tcp_retries2[2]: x: "
        "'x': a sysctl is the number /proc/sys takes, in its own unit and without "
        "one (tcp_keepalive_time: 2 for 2 s, tcp_rto_max_ms: 1000 for 1 s)",
        f"{f}:16: sweep.hosts.client.agent.socket.keepidle[1]: 2: 2 has no unit: write 2s or 2ms "
        "(a duration needs its unit)",
        f"{f}:17: sweep.hosts.client.agent.socket.keepidle[2]: 1.5s: keepidle is "
        "in whole seconds (the kernel's unit), at least 1s",
    ]


def test_the_whole_file_checks_run_on_every_value(tmp_path: Path) -> None:
    # Valid for its field, not for the scenario: outside the subnet; a step beyond the duration.
    path = write(tmp_path, "  hosts.client.address: [10.77.0.30, 10.99.0.5]\n  duration: [30s, 500ms]\n")
    f = str(path)
    assert problems(path) == [
        f"{f}:13: sweep.hosts.client.address[1]: 10.99.0.5: 10.99.0.5 is outside the subnet 10.77.0.0/24",
        f"{f}:14: sweep.duration[1]: 500ms: timeline[0].at: 1s after client.connected cannot fall within "
        "the duration (0.5s)",
    ]


def test_a_combination_that_fails_names_the_values_that_matter(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  hosts.client.sysctls.net.ipv4.tcp_retries2: [3, 5]\n"
        "  duration: [30s, 2m]\n"
        "  timeline[0].at: [1s, 45s]\n",
    )
    f = str(path)
    assert problems(path) == [
        f"{f}:12: sweep: with duration=30s,at=45s: timeline[0].at: 45s after client.connected cannot fall "
        "within the duration (30s)"
    ]


def test_duplicates_empty_lists_and_overlaps(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  hosts.client.sysctls.net.ipv4.tcp_retries2: [3, 3]\n"  # line 13
        "  hosts.client.agent.every: []\n"
        "  timeline[0].at: [1s]\n"
        "  timeline.0.at: [2s]\n",
    )
    f = str(path)
    assert problems(path) == [
        f"{f}:13: sweep.hosts.client.sysctls.net.ipv4.tcp_retries2[1]: 3 twice",
        f"{f}:14: sweep.hosts.client.agent.every: no values: give the values to try",
        f"{f}:16: sweep.timeline.0.at: names the same value as timeline[0].at",
    ]


def test_too_many_combinations(tmp_path: Path) -> None:
    many = ", ".join(str(n) for n in range(1, 12))
    path = write(tmp_path, f"  hosts.client.agent.size: [{many}]\n  hosts.client.agent.count: [{many}]\n")
    assert problems(path) == [f"{path}:12: sweep: 121 combinations: at most {MAX_RUNS} runs"]


def test_too_many_keys(tmp_path: Path) -> None:
    keys = "".join(f"  hosts.client.agent.socket.keepidle{i}: [1s]\n" for i in range(MAX_KEYS + 1))
    path = write(tmp_path, keys)
    assert problems(path) == [f"{path}:12: sweep: {MAX_KEYS + 1} keys: at most {MAX_KEYS}"]


def test_an_unsupported_sysctl_is_the_value_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "  hosts.client.sysctls.net.ipv4.tcp_retries9: [1]\n")
    assert "unsupported sysctl net.ipv4.tcp_retries9" in problems(path)[0]


def test_the_base_must_be_valid_as_it_stands(tmp_path: Path) -> None:
    path = write(tmp_path, "  duration: [30s]\n", BASE.replace("duration: 2m\n", ""))
    assert any("duration: Field required" in p for p in problems(path))


def test_scenario_at_gives_none_for_a_value_the_scenario_refuses(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, "  hosts.client.agent.socket.keepidle: [1s, 5s]\n"))
    good = sweep.scenario_at(["3s"])
    assert good is not None and good.hosts["client"].socket_options.keepidle == 3.0
    assert sweep.scenario_at(["2.5s"]) is None


def test_the_shipped_sweep_expands() -> None:
    sweep = load_sweep(ROOT / "scenarios/sweep_retries2.yaml")
    assert [p.settings for p in sweep.points] == [(3.0,), (5.0,), (8.0,)]


def test_resolving_follows_the_model_not_the_text() -> None:
    data = yaml.safe_load(BASE)
    found = leaf.resolve("hosts.client.agent.socket.user_timeout", data)
    assert found.path == ("hosts", "client", "agent", "socket", "user_timeout")
    assert found.kind == "duration"
    assert leaf.resolve("expect.tolerance", data).kind == "other"
    put = leaf.put(data, found.path, "3s")
    assert put["hosts"]["client"]["agent"]["socket"] == {"user_timeout": "3s"}
    assert "socket" not in data["hosts"]["client"]["agent"], "the original is left as it was"


keys = st.one_of(
    st.sampled_from(
        [
            "hosts.client.sysctls.net.ipv4.tcp_retries2",
            "hosts.client.agent.socket.keepidle",
            "hosts.client.agent",
            "timeline[0].at",
            "timeline[0]",
            "duration",
            "expect.apps.client.sees",
            "hosts.server.role",
            "hosts.client.address",
            "network.subnet",
        ]
    ),
    st.text(max_size=30),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["3s", "0", "ETIMEDOUT", "10.77.0.9", "10.77.0.0/24", "server", "client", "[1]"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(keys, st.lists(scalars, max_size=4), max_size=3))
def test_any_sweep_loads_or_fails_cleanly(tmp_path: Path, matrix: dict[str, Any]) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(BASE + yaml.safe_dump({"sweep": matrix}))
    try:
        sweep = load_sweep(path)
    except ScenarioError as exc:
        assert exc.problems and all(p.file == str(path) and p.message for p in exc.problems)
        return
    assert len(sweep.points) == math.prod(len(v) for v in matrix.values())
    assert all(len(p.values) == len(matrix) for p in sweep.points)
