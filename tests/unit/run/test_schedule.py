from __future__ import annotations

from orchestrator.run.records import AgentEvent
from orchestrator.run.schedule import Schedule
from orchestrator.scenario.steps import Disconnect, Kill


def test_timed_and_event_steps() -> None:
    steps = [
        Disconnect(fault="disconnect", host="server", after="client.connected", at="1s"),
        Kill(fault="kill", host="server", at="5s"),
    ]
    s = Schedule.of(list(steps), t0=100.0)
    assert s.next_due() == 105.0
    assert s.due(104.0) == []
    s.observe(AgentEvent(host="server", event="connected", t=100.5))  # another host's event: no match
    assert s.next_due() == 105.0
    s.observe(AgentEvent(host="client", event="connected", t=100.5))
    assert s.next_due() == 101.5
    fired = s.due(110.0)
    assert [p.index for p in fired] == [0, 1]
    assert not s.pending and not s.has_timed()


def test_unarmed_step_is_not_timed() -> None:
    s = Schedule.of([Disconnect(fault="disconnect", host="server", after="client.eof")], t0=0.0)
    assert not s.has_timed() and s.next_due() is None
