"""The loader: valid scenarios load; every mistake is reported at once with file:line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import ScenarioError
from orchestrator.kernel.settings import settings_of_host
from orchestrator.scenario.loader import MAX_BYTES, load_scenario
from orchestrator.scenario.steps import Disconnect, Kill

SCENARIOS = sorted((Path(__file__).parents[3] / "scenarios").glob("*.yaml"))

GOOD = """\
name: t
duration: 10s
hosts:
  server:
    role: server
    address: 10.77.0.10
    agent: {mode: echo, port: 7000}
  client:
    role: client
    address: 10.77.0.20
    sysctls: {net.ipv4.tcp_retries2: 5}
    agent: {mode: send, connect: "server:7000", every: 200ms}
timeline:
  - {after: client.connected, at: 1s, fault: disconnect, host: server}
  - {at: 2s, fault: kill, host: server, signal: term}
expect:
  close: none
  retransmissions: {client: ">=4"}
  apps: {client: {sees: ETIMEDOUT, at: predicted}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text))
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_load(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.hosts_with_role("client") and scenario.hosts_with_role("server")


def test_good_scenario_is_typed(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, GOOD))
    assert s.duration == 10.0
    assert isinstance(s.timeline[0], Disconnect) and s.timeline[0].after == "client.connected"
    assert isinstance(s.timeline[1], Kill) and s.timeline[1].signal == "SIGTERM"
    assert s.hosts["client"].sysctl("tcp_retries2", 15) == 5
    assert s.expect.retransmissions["client"].contains(4)
    assert not s.expect.retransmissions["client"].contains(3)
    assert s.hosts["server"].effective_mac == "02:42:0a:4d:00:0a"


def test_every_problem_is_reported_with_line_and_key(tmp_path: Path) -> None:
    text = GOOD.replace("duration: 10s", "duration: soon").replace("mode: echo", "mode: echoo")
    text = text.replace("fault: kill", "fault: explode").replace("close: none", "close: fn")
    found = problems(tmp_path, text)
    assert any(p.startswith(f"{tmp_path}/s.yaml:2: duration:") for p in found), found
    assert any(":7: hosts.server.agent.mode:" in p for p in found), found
    assert any(":15: timeline[1].fault: unknown 'explode'" in p for p in found), found
    assert any(":17: expect.close:" in p for p in found), found
    assert len(found) == 4, found


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("  retransmissions:", "  retransmisions:"))
    assert found == [
        f"{tmp_path}/s.yaml:18: expect.retransmisions: unknown key (did you mean 'retransmissions'?)"
    ]


def test_a_misspelt_errno_suggests_the_real_one(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, GOOD.replace("sees: ETIMEDOUT", "sees: ETIMEOUT"))
    assert ":19: expect.apps.client.sees:" in found and "got 'ETIMEOUT' (did you mean 'ETIMEDOUT'?)" in found
    (far,) = problems(tmp_path, GOOD.replace("sees: ETIMEDOUT", "sees: bogus"))
    assert "got 'bogus'" in far and "did you mean" not in far


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("timeline:", "duration: 5s\ntimeline:")
    found = problems(tmp_path, text)
    assert any(":13: duration: duplicate key" in p for p in found), found


def test_cross_checks_name_the_key(tmp_path: Path) -> None:
    text = GOOD.replace("address: 10.77.0.20", "address: 10.77.0.10").replace(
        "host: server, signal", "host: ghost, signal"
    )
    text = text.replace('connect: "server:7000"', 'connect: "nowhere:7000"')
    found = problems(tmp_path, text)
    assert any(":10: hosts.client.address: 10.77.0.10 is also used by host 'server'" in p for p in found), (
        found
    )
    assert any("hosts.client.agent.connect: unknown host 'nowhere'" in p for p in found), found
    assert any(":15: timeline[1].host: unknown host 'ghost'" in p for p in found), found


def test_address_outside_subnet_and_times_out_of_order(tmp_path: Path) -> None:
    text = GOOD.replace("address: 10.77.0.20", "address: 10.78.0.20")
    text = text.replace("{at: 2s, fault: kill", "{at: 20s, fault: kill")
    found = problems(tmp_path, text)
    assert any("hosts.client.address: 10.78.0.20 is outside the subnet 10.77.0.0/24" in p for p in found), (
        found
    )
    assert any("timeline[1].at: 20s is not within the duration" in p for p in found), found


def test_an_address_or_subnet_yaml_reads_as_a_bool_or_number_is_refused(tmp_path: Path) -> None:
    # ipaddress takes True and 5 as 0.0.0.1 and 0.0.0.5; the messages named those as written.
    text = GOOD.replace("address: 10.77.0.10", "address: yes\n    address6: 5")
    text = text.replace("hosts:", "network: {subnet: 1, subnet6: true}\nhosts:")
    found = problems(tmp_path, text)
    assert any(":3: network.subnet: a number (1) where text such as 10.77.0.0/24" in p for p in found), found
    assert any(":3: network.subnet6: a boolean (true) where text such as fd77::/64" in p for p in found), (
        found
    )
    assert any(":7: hosts.server.address: a boolean (true) where text" in p for p in found), found
    assert any(":8: hosts.server.address6: a number (5) where text" in p for p in found), found
    assert not any("0.0.0." in p for p in found), found
    # Written as text, the same keys load.
    good = GOOD.replace("hosts:", "network: {subnet: 10.77.0.0/24, subnet6: 'fd77::/64'}\nhosts:")
    good = good.replace("address: 10.77.0.10", "address: 10.77.0.10\n    address6: 'fd77::10'")
    scenario = load_scenario(write(tmp_path, good))
    assert str(scenario.hosts["server"].address6) == "fd77::10"


def test_a_yaml_bool_where_a_number_is_written_is_refused_by_its_key(tmp_path: Path) -> None:
    # pydantic's lax mode took `port: yes` as port 1 and `tcp_retries2: true` as 1, silently.
    text = GOOD.replace("port: 7000}", "port: yes}").replace("tcp_retries2: 5", "tcp_retries2: true")
    text = text.replace("every: 200ms}", "every: 200ms, connections: on, size: 64}")
    found = problems(tmp_path, text)
    assert [p.split(": a boolean")[0].split(": ", 1)[1] for p in found if ": a boolean" in p] == [
        "hosts.server.agent.port",
        "hosts.client.agent.connections",
    ], found
    # The sysctls' own check (a sysctl is /proc/sys's number) names the bool too.
    assert any(
        "hosts.client.sysctls.net.ipv4.tcp_retries2: true: a sysctl is the number" in p for p in found
    ), found
    assert len(found) == 3, found
    assert all(":7:" in p or ":11:" in p or ":12:" in p for p in found), found
    # Where the model holds a bool, one is taken; with the rest of the file right it loads.
    good = GOOD.replace("every: 200ms}", "every: 200ms, socket: {keepalive: yes}}")
    assert load_scenario(write(tmp_path, good)).hosts["client"].agent is not None


def test_unsupported_sysctl(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("net.ipv4.tcp_retries2: 5", "net.core.somaxconn: 5"))
    assert len(found) == 1
    assert ":11: hosts.client.sysctls.net.core.somaxconn: unsupported sysctl net.core.somaxconn" in found[0]
    assert "did you mean" not in found[0]  # nothing close to it


def test_a_misspelt_sysctl_says_which_was_meant(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, GOOD.replace("net.ipv4.tcp_retries2: 5", "net.ipv4.tcp_retries: 5"))
    assert "unsupported sysctl net.ipv4.tcp_retries (did you mean net.ipv4.tcp_retries2?); " in found


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "a scenario is a mapping"),
        ("!!python/object:os.system {}", "not valid YAML"),
        ("", "a scenario is a mapping"),
    ],
)
def test_not_a_scenario(tmp_path: Path, text: str, needle: str) -> None:
    found = problems(tmp_path, text)
    assert any(needle in p for p in found), found


def test_huge_and_missing_files(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_BYTES + 1))
    with pytest.raises(ScenarioError, match="at most"):
        load_scenario(big)
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "absent.yaml")


@pytest.mark.parametrize("duration", ["0s", "2h", "-1", "yes"])
def test_duration_bounds(tmp_path: Path, duration: str) -> None:
    found = problems(tmp_path, GOOD.replace("duration: 10s", f"duration: {duration}"))
    assert any(":2: duration:" in p for p in found), found


def test_netem_arguments_and_rules(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  - {at: 2s, fault: kill, host: server, signal: term}",
        "  - {at: 2s, fault: netem, host: server, delay: 100ms, jitter: 10ms, loss: 5%, reorder: 25%}",
    )
    step = load_scenario(write(tmp_path, text)).timeline[1]
    assert step.fault == "netem"
    assert step.tc_args() == ["delay", "100ms", "10ms", "loss", "5%", "reorder", "25%"]
    bad = GOOD.replace(
        "  - {at: 2s, fault: kill, host: server, signal: term}", "  - {at: 2s, fault: netem, host: server}"
    )
    assert any("netem needs at least one of" in p for p in problems(tmp_path, bad))


def test_an_event_step_that_cannot_fall_within_the_duration_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("{after: client.connected, at: 1s,", "{after: client.connected, at: 30s,")
    found = problems(tmp_path, text)
    assert any(
        ":14: timeline[0].at: 30s after client.connected cannot fall within the duration (10s)" in p
        for p in found
    ), found


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("every: 200ms", "every: 200", "hosts.client.agent.every: 200 has no unit: write 200s or 200ms"),
        ("duration: 10s", "duration: 10", "duration: 10 has no unit: write 10s or 10ms"),
        ("at: 2s, fault: kill", "at: '2', fault: kill", "timeline[1].at: 2 has no unit"),
    ],
)
def test_a_duration_needs_its_unit(tmp_path: Path, old: str, new: str, message: str) -> None:
    found = problems(tmp_path, GOOD.replace(old, new))
    assert any(message in p for p in found), found


def test_zero_needs_no_unit(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, GOOD.replace("at: 2s, fault: kill", "at: 0, fault: kill")))
    assert s.timeline[1].at == 0


@pytest.mark.parametrize(("bare", "meant"), [("10", "10%"), ("0.1", "10%"), ("2.5", "2.5%")])
def test_a_tolerance_needs_its_percent_sign(tmp_path: Path, bare: str, meant: str) -> None:
    found = problems(tmp_path, GOOD + f"  tolerance: {bare}\n")
    assert any(f"expect.tolerance: {bare} has no unit: did you mean {meant}?" in p for p in found), found


def test_a_user_timeout_in_milliseconds_reads_as_it_says(tmp_path: Path) -> None:
    text = GOOD.replace("every: 200ms}", "every: 200ms, socket: {user_timeout: 4000ms}}")
    s = load_scenario(write(tmp_path, text))
    assert s.hosts["client"].agent.socket.user_timeout == 4.0
    bare = problems(tmp_path, text.replace("4000ms", "4000"))
    assert any("socket.user_timeout: 4000 has no unit" in p for p in bare), bare


def test_an_event_the_host_cannot_emit_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("after: client.connected", "after: client.conected"))
    assert any(
        ":14: timeline[0].after: client never reports 'conected' (did you mean client.connected?)" in p
        for p in found
    ), found
    # A client never accepts: that is a server's event.
    found = problems(tmp_path, GOOD.replace("after: client.connected", "after: client.accepted"))
    assert any("client never reports 'accepted'" in p and "its events are" in p for p in found), found


def test_every_event_of_the_agent_is_accepted(tmp_path: Path) -> None:
    from orchestrator.agent.wire import EVENTS_BY_ROLE  # noqa: PLC0415

    for event in EVENTS_BY_ROLE["client"]:
        load_scenario(
            write(tmp_path, GOOD.replace("after: client.connected", f"after: client.{event.value}"))
        )


def test_a_typo_does_not_hide_the_whole_file_checks(tmp_path: Path) -> None:
    """The model's mistakes and the checks that need a whole model, in one report."""
    found = problems(
        tmp_path,
        """
        name: at_once
        duration: 20s
        hosts:
          server: {role: server, address: 10.77.74.10}
          client:
            role: client
            address: 10.77.0.20
            agent: {mode: send, connect: "server:7000", evry: 1s}
        timeline:
          - {at: 1s, fault: conntrack_flush, host: server}
        expect:
          apps:
            client: {sees: ETIMEOUT}
            servr: {sees: eof}
        """,
    )
    assert any("hosts.client.agent.evry: unknown key (did you mean 'every'?)" in p for p in found), found
    assert any("expect.apps.client.sees: expected eof" in p for p in found), found
    # ...and, beyond them, what only the whole file shows:
    assert any("hosts.server.address: 10.77.74.10 is outside the subnet" in p for p in found), found
    assert any("timeline[0].host: conntrack_flush acts on a router" in p for p in found), found
    assert any("expect.apps.servr: unknown host 'servr'" in p for p in found), found
    # Nothing about what was taken out to get there (the client's emptied expectation).
    assert not [p for p in found if "expect at least one of" in p], found
    assert len(found) == 5, found


@pytest.mark.parametrize(
    ("right", "mistake", "told"),
    [
        ("duration: 20s", "duration: 20", "duration: 20 has no unit"),
        ("fault: disconnect", "fault: disconect", "timeline[1].fault: unknown 'disconect'"),
    ],
)
def test_a_required_value_the_model_refused_does_not_hide_the_whole_file_checks(
    tmp_path: Path, right: str, mistake: str, told: str
) -> None:
    # Measured: either mistake alone was the only problem said; the whole-file ones came after
    # it was fixed. The duration stands in as the longest, a step as a heal of its host.
    text = """
        name: required
        duration: 20s
        hosts:
          server: {role: server, address: 10.77.0.10}
          client: {role: client, address: 10.77.0.20, agent: {mode: send, connect: "srv:7000"}}
        timeline:
          - {at: 1s, fault: pause, host: client}
          - {at: 3s, fault: disconnect, host: server}
          - {at: 5s, fault: kill, host: nobody}
        expect:
          apps:
            clent: {sees: ETIMEDOUT}
        """
    found = problems(tmp_path, text.replace(right, mistake))
    assert any(told in p for p in found), found
    assert any("hosts.client.agent.connect: unknown host 'srv'" in p for p in found), found
    assert any("timeline[2].host: unknown host 'nobody'" in p for p in found), found
    assert any("expect.apps.clent: unknown host 'clent'" in p for p in found), found
    # Nothing about the stand-ins themselves (a step beyond the longest duration, a heal).
    assert not [p for p in found if "within the duration" in p or ("timeline[1]" in p and told not in p)]
    assert len(found) == 4, found


def test_a_step_that_stood_in_makes_no_problem_of_the_same_hosts_later_steps(tmp_path: Path) -> None:
    # The misspelt unpause stands in as a heal: the pause after it is not "a second pause".
    found = problems(
        tmp_path,
        """
        name: order
        duration: 20s
        hosts:
          server: {role: server, address: 10.77.0.10}
          client: {role: client, address: 10.77.0.20, agent: {mode: send, connect: "server:7000"}}
        timeline:
          - {at: 1s, fault: pause, host: server}
          - {at: 2s, fault: unpase, host: server}
          - {at: 3s, fault: pause, host: server}
          - {at: 4s, fault: kill, host: nobody}
        """,
    )
    assert any("timeline[1].fault: unknown 'unpase'" in p for p in found), found
    assert any("timeline[3].host: unknown host 'nobody'" in p for p in found), found
    assert len(found) == 2, found


def test_a_host_that_cannot_be_read_stops_the_checks_that_would_name_it(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        name: unreadable
        duration: 20s
        hosts:
          server: {role: server, address: 10.77.74.10}
          client: {role: client, address: 10.77.0.x, agent: {mode: send, connect: "server:7000"}}
        """,
    )
    assert [p for p in found if "hosts.client.address" in p], found
    assert not [p for p in found if "hosts.server" in p or "no client" in p], found


def test_a_right_key_in_the_wrong_place_is_told_where_it_goes(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        name: misplaced
        duration: 5s
        hosts:
          server: {role: server, address: 10.77.0.10}
          client:
            role: client
            address: 10.77.0.20
            agent: {mode: send, connect: "server:7000"}
            socket: {keepalive: true}
        """,
    )
    [said] = [p for p in found if "hosts.client.socket" in p]
    assert "unknown key here ('socket' is a key of agent:" in said, said
    assert "did you mean 'socket'" not in said


def test_an_rto_ceiling_is_taken_where_the_kernel_takes_it(tmp_path: Path) -> None:
    """tcp_rto_max_ms and the socket's rto_max (TCP_RTO_MAX_MS): 1 s to 120 s, as the kernel
    checks (it refuses others with EINVAL); the model reads both in seconds."""
    text = GOOD.replace("net.ipv4.tcp_retries2: 5", "net.ipv4.tcp_retries2: 5, net.ipv4.tcp_rto_max_ms: 2000")
    s = load_scenario(write(tmp_path, text))
    assert settings_of_host(s.hosts["client"]).rto_max == 2.0
    sock = load_scenario(
        write(tmp_path, GOOD.replace("every: 200ms}", "every: 200ms, socket: {rto_max: 1500ms}}"))
    )
    assert settings_of_host(sock.hosts["client"]).rto_max == 1.5
    low = problems(tmp_path, text.replace("2000", "500"))
    assert any(
        "net.ipv4.tcp_rto_max_ms: 500 is not a value the kernel takes (1000 to 120000)" in p for p in low
    )
    high = problems(tmp_path, GOOD.replace("every: 200ms}", "every: 200ms, socket: {rto_max: 130s}}"))
    assert any("rto_max (TCP_RTO_MAX_MS) is 1s to 120s" in p for p in high), high


@pytest.mark.parametrize("grace", ["500ms", "1500ms"])
def test_a_stop_grace_in_fractions_of_a_second_is_refused(tmp_path: Path, grace: str) -> None:
    """The engine's stop takes whole seconds: 500ms became 0 (SIGKILL right after the SIGTERM:
    measured, a program's 0.3 s SIGTERM clean-up never ran), 1500ms became 2 s."""
    text = GOOD.replace(
        "{at: 2s, fault: kill, host: server, signal: term}",
        f"{{at: 2s, fault: stop, host: server, grace: {grace}}}",
    )
    found = problems(tmp_path, text)
    assert any("timeline[1].grace:" in p and "whole seconds" in p for p in found), found


@pytest.mark.parametrize("grace", ["0s", "1s", "3s"])
def test_a_stop_grace_in_whole_seconds_loads(tmp_path: Path, grace: str) -> None:
    text = GOOD.replace(
        "{at: 2s, fault: kill, host: server, signal: term}",
        f"{{at: 2s, fault: stop, host: server, grace: {grace}}}",
    )
    assert load_scenario(write(tmp_path, text)).timeline[1].grace == float(grace.removesuffix("s"))  # type: ignore[union-attr]


def test_a_loss_over_100_percent_is_not_called_a_tolerance(tmp_path: Path) -> None:
    """`percent: 150%` on a loss step was refused as "a tolerance must be between 0% and 100%"."""
    text = GOOD.replace(
        "{at: 2s, fault: kill, host: server, signal: term}",
        "{at: 2s, fault: loss, host: server, percent: 150%}",
    )
    found = problems(tmp_path, text)
    assert any("timeline[1].percent: 150%: a percentage is between 0% and 100%" in p for p in found), found
    assert not any("tolerance" in p for p in found), found


def test_a_sysctl_with_a_unit_says_sysctls_take_the_kernels_number(tmp_path: Path) -> None:
    """`tcp_keepalive_time: 2s` was refused with pydantic's "unable to parse string as an
    integer", which does not say that /proc/sys's number is wanted."""
    text = GOOD.replace("sysctls: {net.ipv4.tcp_retries2: 5}", "sysctls: {net.ipv4.tcp_keepalive_time: 2s}")
    found = problems(tmp_path, text)
    assert any(
        "hosts.client.sysctls.net.ipv4.tcp_keepalive_time: '2s': a sysctl is the number /proc/sys takes" in p
        for p in found
    ), found
    assert not any("unable to parse" in p for p in found), found


def test_a_sysctl_given_as_digits_in_quotes_still_loads(tmp_path: Path) -> None:
    text = GOOD.replace("sysctls: {net.ipv4.tcp_retries2: 5}", 'sysctls: {net.ipv4.tcp_retries2: "5"}')
    assert load_scenario(write(tmp_path, text)).hosts["client"].sysctls == {"net.ipv4.tcp_retries2": 5}


def test_a_value_that_fits_no_branch_is_one_problem_naming_both(tmp_path: Path) -> None:
    """`at: 12.6` (no unit) was two problems at the same key: "Input should be 'predicted'" and
    the duration's "12.6 has no unit"; the first reads as if only `predicted` were allowed."""
    text = GOOD.replace(
        "apps: {client: {sees: ETIMEDOUT, at: predicted}}", "apps: {client: {sees: ETIMEDOUT, at: 12.6}}"
    )
    text = text.replace("  close: none\n", "  close: fn\n")
    found = problems(tmp_path, text)
    at = [p for p in found if "expect.apps.client.at" in p]
    assert len(at) == 1 and at[0].endswith(
        "12.6 has no unit: write 12.6s or 12.6ms (a duration needs its unit) (or 'predicted')"
    ), found
    # A literal with no other branch is still told as it is.
    assert any(
        "expect.close: Input should be 'fin', 'fin-unanswered', 'rst' or 'none'" in p for p in found
    ), found


BLOCKS = """\
name: t
duration: 10s
hosts:
  server:
    role: server
    address: 10.77.0.10
    agent: {mode: echo, port: 7000}
  client:
    role: client
    address: 10.77.0.20
    sysctls:
      net.ipv4.tcp_retries2: 2s
      net.ipv4.tcp_thin_linear_timeouts: 3
      net.ipv4.tcp_bogus: 1
      net.ipv4.tcp_keepalive_time: 5
    agent:
      mode: send
      connect: "server:7000"
      socket:
        keepalive: true
        keepidle: 1500ms
        user_timeout: 3 parsecs
        keepalive_period: 2s
        keepcnt: 0
        rto_max: 200s
"""


def test_every_problem_of_one_block_is_told_at_its_own_key_and_line(tmp_path: Path) -> None:
    """A broken user_timeout hid keepidle's problem beside it, and a sysctl's unit the others'
    range and name: only one problem per block was told, at the block's line."""
    found = problems(tmp_path, BLOCKS)
    at = {p.split(": ", 2)[1]: p.split(": ", 1)[0].rsplit(":", 1)[1] for p in found}
    assert at == {
        "hosts.client.sysctls.net.ipv4.tcp_retries2": "12",
        "hosts.client.sysctls.net.ipv4.tcp_thin_linear_timeouts": "13",
        "hosts.client.sysctls.net.ipv4.tcp_bogus": "14",
        "hosts.client.agent.socket.keepidle": "21",
        "hosts.client.agent.socket.user_timeout": "22",
        "hosts.client.agent.socket.keepalive_period": "23",
        "hosts.client.agent.socket.keepcnt": "24",
        "hosts.client.agent.socket.rto_max": "25",
    }, found
    said = "\n".join(found)
    for words in (
        "'2s': a sysctl is the number /proc/sys takes",
        "3 is not a value the kernel takes (0 to 1)",
        "unsupported sysctl net.ipv4.tcp_bogus",
        "keepidle is in whole seconds",
        "expected a duration such as 200ms",
        "keepalive_period sets both keepidle and keepintvl",
        "greater than or equal to 1",
        "rto_max (TCP_RTO_MAX_MS) is 1s to 120s",
    ):
        assert words in said, found


def test_the_right_ones_beside_them_still_load(tmp_path: Path) -> None:
    good = (
        BLOCKS.replace("tcp_retries2: 2s", "tcp_retries2: 5")
        .replace("timeouts: 3", "timeouts: 1")
        .replace("      net.ipv4.tcp_bogus: 1\n", "")
        .replace("keepidle: 1500ms", "keepintvl: 2s")
        .replace("        user_timeout: 3 parsecs\n", "")
        .replace("        keepalive_period: 2s\n", "")
        .replace("keepcnt: 0", "keepcnt: 3")
        .replace("rto_max: 200s", "rto_max: 2s")
    )
    host = load_scenario(write(tmp_path, good)).hosts["client"]
    assert host.sysctls == {
        "net.ipv4.tcp_retries2": 5,
        "net.ipv4.tcp_thin_linear_timeouts": 1,
        "net.ipv4.tcp_keepalive_time": 5,
    }
    opts = host.socket_options
    assert (opts.keepintvl, opts.keepcnt, opts.rto_max) == (2.0, 3, 2.0)
    # keepalive_period alone beside keepintvl is the one problem left.
    period = good.replace("keepintvl: 2s", "keepintvl: 2s\n        keepalive_period: 3s")
    (only,) = problems(tmp_path, period)
    assert "socket.keepalive_period: keepalive_period sets both" in only
