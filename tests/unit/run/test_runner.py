"""The run loop on a fake backend: order of start, the timeline, failures, clean-up; no engine."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from orchestrator.errors import EngineError
from orchestrator.run.records import AgentEvent, FaultRecord
from orchestrator.run.runner import CancelledError, RunResult, new_run, run_scenario
from orchestrator.scenario.loader import parse_scenario
from orchestrator.scenario.model import Scenario
from orchestrator.scenario.yamlpos import load_located
from tests.helpers.fake_backend import POWER_OFF_TEARDOWN_S, FakeBackend, FakeHost, Script

BASE = """\
name: fake
duration: {duration}
settle: 100ms
hosts:
  server: {{role: server, address: 10.77.0.10, agent: {{mode: echo, port: 7000}}}}
  client: {{role: client, address: 10.77.0.20, agent: {{mode: send, connect: "server:7000"}}}}
timeline:
{timeline}
"""


def scenario(timeline: str = "  []", duration: str = "1s") -> Scenario:
    text = BASE.format(timeline=timeline, duration=duration).replace("timeline:\n  []", "timeline: []")
    return parse_scenario(load_located(text), "fake.yaml")


class Recorder:
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.events: list[AgentEvent] = []
        self.faults: list[FaultRecord] = []

    def started(self, run_dir: Path, scenario: Scenario) -> None:
        self.steps.append("started")

    def step(self, message: str) -> None:
        self.steps.append(message)

    def event(self, event: AgentEvent) -> None:
        self.events.append(event)

    def fault(self, record: FaultRecord) -> None:
        self.faults.append(record)


def connects(backend: FakeBackend, host: FakeHost, call: str) -> None:
    """The client connects as soon as it starts."""
    if call == "start_app" and host.name == "client":
        backend.say_line("client", "connected", local="10.77.0.20:40000", peer="10.77.0.10:7000")


def run(
    sc: Scenario, tmp_path: Path, script: Script = connects, cancel: threading.Event | None = None
) -> tuple[RunResult, Recorder, FakeBackend]:
    made: list[FakeBackend] = []
    observer = Recorder()
    result = run_scenario(sc, new_run(sc, tmp_path), observer, FakeBackend.factory(script, made), cancel)
    return result, observer, made[0]


def timeline(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "timeline.jsonl").read_text().splitlines()]


def test_servers_start_before_traffic_and_clients_after(tmp_path: Path) -> None:
    result, observer, backend = run(scenario(), tmp_path)
    starts = [h for h, call in backend.calls if call == "start_app"]
    assert starts == ["server", "client"]
    assert backend.booted == ["server", "client"]
    assert observer.steps.index("traffic started") < len(observer.steps)
    assert result.t0 is not None and result.error is None
    assert backend.entered and backend.exited and backend.exit_type is None
    assert result.captures == {"server": ["server.pcap"], "client": ["client.pcap"]}
    assert (result.run_dir / "verdict.json").exists()
    assert (result.run_dir / "client.agent.log").read_text() == "client log\n"
    assert (result.run_dir / "server.ss.txt").exists()


def test_a_timed_step_is_applied_once_and_recorded(tmp_path: Path) -> None:
    sc = scenario("  - {at: 200ms, fault: disconnect, host: server}")
    result, observer, backend = run(sc, tmp_path)
    assert backend.calls.count(("server", "disconnect")) == 1
    [record] = result.faults
    assert record.fault == "disconnect" and record.error is None
    assert result.t0 is not None and record.t - result.t0 >= 0.2
    assert record.t_done is not None and record.t_done >= record.t
    assert observer.faults == [record]
    assert next(e for e in timeline(result.run_dir) if e.get("fault") == "disconnect")["index"] == 0


def test_a_power_off_is_in_effect_from_its_cut_not_from_when_its_containers_are_gone(
    tmp_path: Path,
) -> None:
    result, _, backend = run(scenario("  - {at: 100ms, fault: power_off, host: server}"), tmp_path)
    [record] = result.faults
    done = backend.hosts["server"].powered_off_at
    assert record.t_done is not None and done is not None
    assert record.t <= record.t_done < done - POWER_OFF_TEARDOWN_S / 2


def test_an_event_arms_a_step(tmp_path: Path) -> None:
    sc = scenario("  - {after: client.connected, at: 100ms, fault: kill, host: server}")
    result, _, backend = run(sc, tmp_path)
    assert ("server", "signal_app SIGKILL") in backend.calls
    connected = next(e for e in result.events if e.event == "connected")
    assert result.faults[0].t - connected.t >= 0.1


def test_a_step_whose_event_never_comes_fails_with_the_true_reason(tmp_path: Path) -> None:
    sc = scenario("  - {after: client.eof, fault: kill, host: server}", duration="300ms")
    result, _, backend = run(sc, tmp_path)
    assert not any(call.startswith("signal_app") for _, call in backend.calls)
    assert result.faults == []
    [note] = [e for e in timeline(result.run_dir) if e.get("kind") == "not-applied"]
    assert note["reason"] == "client.eof never happened (client reported connected)"
    assert result.verdict is not None and not result.verdict.passed
    [check] = [c for c in result.verdict.checks if c.name == "timeline[0]"]
    assert not check.passed and check.observed == "not applied: " + note["reason"]


def test_a_step_due_after_the_end_fails_saying_its_event_did_come(tmp_path: Path) -> None:
    def slow_connect(backend: FakeBackend, host: FakeHost, call: str) -> None:
        if call == "start_app" and host.name == "client":
            threading.Timer(0.5, lambda: connects(backend, host, call)).start()

    sc = scenario("  - {after: client.connected, at: 900ms, fault: kill, host: server}", duration="1s")
    result, _, _ = run(sc, tmp_path, slow_connect)
    assert result.verdict is not None
    [check] = [c for c in result.verdict.checks if c.name == "timeline[0]"]
    assert "(client.connected at +0.5" in check.observed and "after the run ended at +1.0" in check.observed
    assert "never happened" not in check.observed and "(the duration)" in check.observed


def test_a_step_at_zero_takes_effect_before_any_client_starts(tmp_path: Path) -> None:
    sc = scenario("  - {at: 0s, fault: blackhole, host: server}")
    result, _, backend = run(sc, tmp_path)
    order = [call for _, call in backend.calls if call in ("start_app", "blackhole both")]
    assert order == ["start_app", "blackhole both", "start_app"]  # server, the fault, then the client
    assert result.faults[0].t_done is not None


def test_a_fault_that_fails_is_recorded_and_fails_the_verdict(tmp_path: Path) -> None:
    def broken(backend: FakeBackend, host: FakeHost, call: str) -> None:
        if call == "pause_app":
            raise RuntimeError("freezer says no")

    sc = scenario("  - {at: 0s, fault: pause, host: server}")
    result, _, _ = run(sc, tmp_path, broken)
    assert result.faults[0].error == "RuntimeError: freezer says no"
    assert result.verdict is not None and not result.verdict.passed
    assert any(c.name == "timeline[0]" and not c.passed for c in result.verdict.checks)


def test_an_engine_error_in_a_fault_stops_the_run_with_exit_3(tmp_path: Path) -> None:
    def engine_gone(backend: FakeBackend, host: FakeHost, call: str) -> None:
        if call == "disconnect":
            raise EngineError("the engine stopped answering")

    sc = scenario("  - {at: 0s, fault: disconnect, host: server}")
    result, _, backend = run(sc, tmp_path, engine_gone)
    assert isinstance(result.error, EngineError) and result.error.exit_code == 3
    assert result.verdict is None
    assert backend.exited  # torn down all the same


def test_clients_that_finish_end_the_run_after_settling(tmp_path: Path) -> None:
    def short_lived(backend: FakeBackend, host: FakeHost, call: str) -> None:
        if call == "start_app" and host.name == "client":
            backend.say_line("client", "exit", code=0)
            host.running = False

    sc = scenario(duration="30s")
    result, observer, _ = run(sc, tmp_path, short_lived)
    assert "clients finished; letting the last packets settle" in observer.steps
    assert result.error is None and result.t0 is not None


def test_cancel_stops_the_run_and_still_tears_down(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    result, _, backend = run(scenario(duration="30s"), tmp_path, cancel=cancel)
    assert isinstance(result.error, CancelledError)
    assert backend.exited


def test_an_interrupt_tears_down_and_propagates(tmp_path: Path) -> None:
    def interrupt(backend: FakeBackend, host: FakeHost, call: str) -> None:
        if call == "start_app" and host.name == "client":
            raise KeyboardInterrupt

    made: list[FakeBackend] = []
    sc = scenario()
    result = new_run(sc, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(sc, result, Recorder(), FakeBackend.factory(interrupt, made))
    assert made[0].exited and made[0].exit_type is KeyboardInterrupt
    assert any(e.get("kind") == "interrupted" for e in timeline(result.run_dir))


def test_only_hosts_whose_firewall_a_fault_changes_get_net_admin(tmp_path: Path) -> None:
    sc = scenario("  - {at: 0s, fault: reject, host: server}\n  - {at: 0s, fault: blackhole, host: client}")
    _, _, backend = run(sc, tmp_path)
    assert backend.net_admin == frozenset({"server"})


def test_every_host_is_sampled_before_any_app_starts_and_again_after_a_power_on(tmp_path: Path) -> None:
    sc = scenario(
        "  - {at: 100ms, fault: power_off, host: server}\n  - {at: 300ms, fault: power_on, host: server}"
    )
    result, _, backend = run(sc, tmp_path)
    calls = [c for c in backend.calls if c[1].startswith(("sample_sockets", "start_app"))]
    assert calls[:2] == [("server", "sample_sockets 0.2"), ("client", "sample_sockets 0.2")]
    assert calls[2] == ("server", "start_app")
    assert backend.hosts["server"].socket_samples == ["server.ss-samples.txt", "server.boot2.ss-samples.txt"]
    rows = [json.loads(line) for line in (result.run_dir / "server.sockets.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["boot"]) for r in rows] == [("sample", 1), ("sample", 2)]
    assert json.loads((result.run_dir / "verdict.json").read_text())["sockets"]["hosts"]["server"][
        "boots"
    ] == [1, 2]
