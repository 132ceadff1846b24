"""Checks that need the whole scenario. Each problem carries its key path, so the loader can give a line."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from orchestrator.agent.wire import EVENTS_BY_ROLE
from orchestrator.scenario.model import ClientHost, Scenario
from orchestrator.scenario.routes import Route
from orchestrator.scenario.topology import network_map, publishes, topology_problems

Path = tuple[str | int, ...]


def find_problems(scenario: Scenario) -> list[tuple[Path, str]]:
    return [
        *_host_problems(scenario),
        *topology_problems(scenario),
        *_timeline_problems(scenario),
        *_expect_problems(scenario),
    ]


def _host_problems(scenario: Scenario) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    roles = [h.role for h in scenario.hosts.values()]
    if "server" not in roles or "client" not in roles:
        problems.append((("hosts",), "hosts need at least one server and one client"))
    seen: dict[str, str] = {}
    for name, host in scenario.hosts.items():
        # Where each address lies (subnet, family, reserved) is `topology_problems`' to say.
        where = "networks" if host.networks else "address"
        keys = [(str(a), where) for a in host.all_addresses()] + [(host.effective_mac, "mac")]
        for key, what in keys:
            if key in seen:
                problems.append(((("hosts", name, what)), f"{key} is also used by host {seen[key]!r}"))
            seen[key] = name
        problems += _app_problems(scenario, name)
        if isinstance(host, ClientHost) and host.agent is not None:
            target, port = host.agent.target
            peer = scenario.hosts.get(target)
            if peer is None:
                problems.append(
                    (
                        ("hosts", name, "agent", "connect"),
                        f"unknown host {target!r}; hosts are {_names(scenario)}",
                    )
                )
            elif peer.role == "router" and not publishes(scenario, target, port):
                problems.append(
                    (
                        ("hosts", name, "agent", "connect"),
                        f"router {target!r} publishes no port {port} (nat.publish)",
                    )
                )
            elif peer.role not in ("server", "router"):
                problems.append((("hosts", name, "agent", "connect"), f"host {target!r} is not a server"))
    return problems


def _app_problems(scenario: Scenario, name: str) -> list[tuple[Path, str]]:
    host = scenario.hosts[name]
    if host.service is not None and scenario.compose is None:
        return [(("hosts", name, "service"), "a service needs the scenario's `compose:` file")]
    return []


def _timeline_problems(scenario: Scenario) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    last_at = -1.0
    for i, step in enumerate(scenario.timeline):
        if step.host not in scenario.hosts:
            problems.append(
                (("timeline", i, "host"), f"unknown host {step.host!r}; hosts are {_names(scenario)}")
            )
        if step.after is not None:
            host, _, event = step.after.partition(".")
            if host not in scenario.hosts:
                problems.append(
                    (("timeline", i, "after"), f"unknown host {host!r}; hosts are {_names(scenario)}")
                )
            elif _untraced(scenario, host) and not step.after.endswith(".exit"):
                problems.append(
                    (
                        ("timeline", i, "after"),
                        f"{host}'s program is not traced (observe: none), so it reports no "
                        f"{step.after.split('.', 1)[1]}: only exit; use `at` from traffic start",
                    )
                )
            elif (known := events_of(scenario, host)) is not None and event not in known:
                problems.append((("timeline", i, "after"), _unknown_event(host, event, known)))
            if step.at >= scenario.duration:
                problems.append(
                    (
                        ("timeline", i, "at"),
                        f"{step.at:g}s after {step.after} cannot fall within the duration "
                        f"({scenario.duration:g}s)",
                    )
                )
            continue
        if step.at < last_at:
            problems.append(
                (("timeline", i, "at"), f"{step.at:g}s comes before the step above it ({last_at:g}s)")
            )
        if step.at >= scenario.duration:
            problems.append(
                (("timeline", i, "at"), f"{step.at:g}s is not within the duration ({scenario.duration:g}s)")
            )
        last_at = step.at
    return problems


def events_of(scenario: Scenario, host: str) -> tuple[str, ...] | None:
    """The events a host's app can report. The built-in agent's come from its wire format, per
    role (a server never connects); a traced program's from its syscalls (`programs.strace`),
    plus its exit."""
    spec = scenario.hosts[host]
    if spec.role == "router":
        return ()  # a router runs no app, so it reports nothing
    if getattr(spec, "program", None) is not None or getattr(spec, "service", None) is not None:
        return TRACED_EVENTS
    return tuple(e.value for e in EVENTS_BY_ROLE[spec.role])


# What `programs.strace` turns a program's syscalls into, and the engine's word on its exit.
TRACED_EVENTS = (
    "listening",
    "accepted",
    "connected",
    "eof",
    "error",
    "closing",
    "closed",
    "option_refused",
    "signal",
    "exit",
)


def _unknown_event(host: str, event: str, known: tuple[str, ...]) -> str:
    hint = difflib.get_close_matches(event, known, n=1)
    role_hint = f" (did you mean {host}.{hint[0]}?)" if hint else ""
    return f"{host} never reports {event!r}{role_hint}; its events are {', '.join(known)}"


def _expect_problems(scenario: Scenario) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = [
        (("expect", "connections", i, "select", end), f"unknown host {name!r}; hosts are {_names(scenario)}")
        for i, want in enumerate(scenario.expect.connections)
        for end, name in (("client", want.select.client), ("server", want.select.server))
        if name is not None and name not in scenario.hosts
    ]
    for name, want in scenario.expect.apps.items():
        host = scenario.hosts.get(name)
        if host is None:
            problems.append(
                (("expect", "apps", name), f"unknown host {name!r}; hosts are {_names(scenario)}")
            )
            continue
        if host.role == "router":
            problems.append((("expect", "apps", name), f"{name} is a router: it runs no app"))
            continue
        for key in ("exits", "output"):
            if getattr(want, key) is not None and host.runs_agent:
                problems.append(
                    (("expect", "apps", name, key), f"{key} is for a program; {name} runs the built-in agent")
                )
    for i, item in enumerate(scenario.expect.sockets):
        for key in ("host", "peer"):
            name = getattr(item, key)
            if name is not None and name not in scenario.hosts:
                problems.append(
                    (("expect", "sockets", i, key), f"unknown host {name!r}; hosts are {_names(scenario)}")
                )
        if item.peer is not None and item.peer == item.host:
            problems.append((("expect", "sockets", i, "peer"), "a host's peer is another host"))
    return problems


def _untraced(scenario: Scenario, name: str) -> bool:
    program = scenario.hosts[name].program
    return program is not None and program.observe == "none"


def _names(scenario: Scenario) -> str:
    return ", ".join(sorted(scenario.hosts))


def find_route_problems(scenario: Scenario, routes: Sequence[Route]) -> list[tuple[Path, str]]:
    """The subnet against the host's own routes (its LAN, its gateway, a VPN): a Docker network
    there would hide them. A default route covers everything; only its gateway counts."""
    found: list[tuple[Path, str]] = []
    advice = ": the scenario's network would hide it; choose another private subnet"
    for name, net in network_map(scenario).items():
        subnet = net.subnet
        key: Path = ("networks", name, "subnet") if scenario.networks else ("network", "subnet")
        problems: list[str] = []
        for route in routes:
            if route.engines:
                continue
            if route.network.prefixlen > 0 and route.network.overlaps(subnet):
                problems.append(
                    f"{subnet} overlaps the host's network {route.network} (on {route.interface})"
                )
            if route.gateway is not None and route.gateway in subnet:
                problems.append(f"{subnet} holds the host's gateway {route.gateway} (on {route.interface})")
        found += [(key, p + advice) for p in dict.fromkeys(problems)]
    return found
