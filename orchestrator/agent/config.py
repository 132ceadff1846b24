"""The JSON config the built-in agent takes, made from a host of the scenario."""

from __future__ import annotations

from orchestrator.agent import wire
from orchestrator.scenario.model import Scenario, ServerHost, SocketOptions
from orchestrator.scenario.topology import connect_address, endpoint


def agent_config(scenario: Scenario, name: str) -> str:
    return wire_config(scenario, name).to_json()


def wire_config(scenario: Scenario, name: str) -> wire.Config:
    """The scenario already checked every value; the agent checks the JSON again, in wire."""
    host = scenario.apps()[name]
    assert host.agent is not None, f"{name} runs a program, not the agent"
    options = _socket(host.agent.socket)
    if isinstance(host, ServerHost):
        return wire.Config(
            host=name,
            role="server",
            mode=host.agent.mode,
            port=host.agent.port,
            # A host with an IPv6 address listens on both families (a dual-stack socket).
            bind="::" if any(a.version == 6 for a in host.all_addresses()) else "0.0.0.0",
            close_after_s=host.agent.close_after,
            socket=options,
        )
    target, port = host.agent.target
    return wire.Config(
        host=name,
        role="client",
        mode=host.agent.mode,
        connect=endpoint(connect_address(scenario, name, target), port),
        every_ms=round(host.agent.every * 1000),
        size=host.agent.size,
        send_after_s=host.agent.send_after,
        count=host.agent.count,
        close_after_s=host.agent.close_after,
        socket=options,
        connections=host.agent.connections,
    )


def _socket(opts: SocketOptions) -> wire.SocketOptions:
    def whole(value: float | None) -> int | None:
        return None if value is None else round(value)

    return wire.SocketOptions(
        keepalive=opts.effective_keepalive,
        keepidle_s=whole(opts.effective_keepidle),
        keepintvl_s=whole(opts.effective_keepintvl),
        keepcnt=opts.keepcnt,
        user_timeout_ms=None if opts.user_timeout is None else round(opts.user_timeout * 1000),
        rto_max_ms=None if opts.rto_max is None else round(opts.rto_max * 1000),
        linger_s=whole(opts.linger),
        nodelay=opts.nodelay,
    )
