"""The JSON config the built-in agent takes, made from a host of the scenario."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.scenario.model import ClientHost, Scenario, ServerHost, SocketOptions


def agent_config(scenario: Scenario, name: str) -> str:
    host = scenario.hosts[name]
    config: dict[str, Any] = {"host": name, "role": host.role, "mode": host.agent.mode}
    if isinstance(host, ServerHost):
        config["port"] = host.agent.port
        if host.agent.close_after is not None:
            config["close_after_s"] = host.agent.close_after
    elif isinstance(host, ClientHost):
        target, port = host.agent.target
        config.update(
            connect=f"{scenario.hosts[target].address}:{port}",
            every_ms=round(host.agent.every * 1000),
            size=host.agent.size,
            send_after_s=host.agent.send_after,
            count=host.agent.count,
            close_after_s=host.agent.close_after,
        )
    config["socket"] = _socket(host.agent.socket)
    return json.dumps(config, separators=(",", ":"))


def _socket(opts: SocketOptions) -> dict[str, Any]:
    def whole(value: float | None) -> int | None:
        return None if value is None else round(value)

    return {
        "keepalive": opts.effective_keepalive,
        "keepidle_s": whole(opts.effective_keepidle),
        "keepintvl_s": whole(opts.effective_keepintvl),
        "keepcnt": opts.keepcnt,
        "user_timeout_ms": None if opts.user_timeout is None else round(opts.user_timeout * 1000),
        "linger_s": whole(opts.linger),
        "nodelay": opts.nodelay,
    }
