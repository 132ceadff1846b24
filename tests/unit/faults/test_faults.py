"""Each fault's logic on a fake backend: the right control, the right arguments, one registration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from orchestrator.faults import FAULTS, FaultContext, apply_step, needs_net_admin
from orchestrator.scenario.steps import FAULT_NAMES, STEP_TYPES, Step
from tests.helpers.fake_backend import FakeBackend, FakeHost, FakeRouter, FakeWire

ROOT = Path(__file__).resolve().parents[3]
STEP = TypeAdapter(Step)

# step (as the YAML gives it) -> the calls it makes on the fake backend
CASES = [
    ({"fault": "disconnect"}, [("server", "disconnect")]),
    ({"fault": "reconnect"}, [("server", "reconnect")]),
    ({"fault": "kill"}, [("server", "signal_app SIGKILL")]),
    ({"fault": "kill", "signal": "term"}, [("server", "signal_app SIGTERM")]),
    ({"fault": "stop", "grace": "2s"}, [("server", "stop_app 2")]),
    ({"fault": "restart"}, [("server", "restart_app")]),
    ({"fault": "pause"}, [("server", "pause_app")]),
    ({"fault": "unpause"}, [("server", "unpause_app")]),
    ({"fault": "power_off"}, [("server", "power_off")]),
    ({"fault": "power_on"}, [("server", "power_on")]),
    ({"fault": "disconnect", "network": "outside"}, [("server", "disconnect outside")]),
    ({"fault": "loss", "percent": "3%"}, [("server", "loss 0.03 both")]),
    ({"fault": "conntrack_flush"}, [("server", "flush_conntrack")]),
    ({"fault": "idle_timeout", "established": "5s"}, [("server", "set_idle_timeout 5")]),
    ({"fault": "inject", "toward": "client", "seq": "in-window"}, [("server", "inject client R +1000")]),
    ({"fault": "blackhole", "direction": "inbound"}, [("server", "blackhole inbound")]),
    ({"fault": "reject"}, [("server", "reject")]),
    ({"fault": "heal"}, [("server", "heal"), ("server", "unreject")]),
    ({"fault": "netem", "delay": "100ms", "loss": "5%"}, [("server", "netem delay 100ms loss 5%")]),
]


def fake(tmp_path: Path) -> tuple[FakeBackend, FaultContext]:
    from tests.unit.run.test_runner import scenario  # noqa: PLC0415

    backend = FakeBackend(scenario(), "r", tmp_path, lambda h, line: None, lambda m: None, frozenset())
    # A router's controls too, so one fake takes every fault (FakeHost alone is no Middlebox).
    host = backend.hosts["server"] = FakeRouter("server", backend)
    return backend, FaultContext(host, FakeWire(backend))


@pytest.mark.parametrize(("raw", "calls"), CASES, ids=[str(c[0]) for c in CASES])
def test_each_fault_uses_its_control(
    raw: dict[str, str], calls: list[tuple[str, str]], tmp_path: Path
) -> None:
    backend, ctx = fake(tmp_path)
    step = STEP.validate_python({**raw, "host": "server"})
    detail = apply_step(step, ctx)
    assert backend.calls == calls
    assert detail.startswith("server") or detail.startswith("link into server")


def test_a_router_fault_on_a_host_that_is_no_router_fails_to_apply(tmp_path: Path) -> None:
    backend, _ = fake(tmp_path)
    plain = FakeHost("server", backend)
    step = STEP.validate_python({"fault": "conntrack_flush", "host": "server"})
    with pytest.raises(RuntimeError, match="not a router"):
        apply_step(step, FaultContext(plain, FakeWire(backend)))


def test_every_step_has_exactly_one_fault_and_the_tests_cover_it() -> None:
    assert sorted(FAULTS) == sorted(FAULT_NAMES)
    assert {f.step for f in FAULTS.values()} == set(STEP_TYPES)
    assert {raw["fault"] for raw, _ in CASES} == set(FAULT_NAMES)


def test_the_readme_lists_every_fault_with_what_tcp_sees() -> None:
    table = (ROOT / "README.md").read_text()
    first_cells = re.findall(r"^\| (`[a-z_]+`[^|]*)\|", table, flags=re.M)
    listed = {name for cell in first_cells for name in re.findall(r"`([a-z_]+)`", cell)}
    assert set(FAULT_NAMES) <= listed, set(FAULT_NAMES) - listed
    assert all(f.effect for f in FAULTS.values())


def test_net_admin_only_where_a_fault_rewrites_the_hosts_firewall() -> None:
    steps = [
        STEP.validate_python(s)
        for s in (
            {"fault": "reject", "host": "a"},
            {"fault": "blackhole", "host": "b"},
            {"fault": "kill", "host": "c"},
        )
    ]
    assert needs_net_admin(steps) == frozenset({"a"})


@pytest.mark.parametrize(
    ("signal", "detail"),
    [
        ("kill", "server app killed with SIGKILL"),
        ("term", "server app killed with SIGTERM"),
        ("stop", "server app sent SIGSTOP"),
    ],
)
def test_a_signal_that_does_not_end_the_app_is_sent_not_killed_with(
    signal: str, detail: str, tmp_path: Path
) -> None:
    _, ctx = fake(tmp_path)
    assert (
        apply_step(STEP.validate_python({"fault": "kill", "signal": signal, "host": "server"}), ctx) == detail
    )
