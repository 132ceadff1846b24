"""What would reach Docker and fail there is refused at validation: MACs, subnets, images, the
host's own routes, and control characters in a scenario's name."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import ScenarioError
from orchestrator.scenario.loader import load_scenario
from orchestrator.scenario.routes import Route, host_routes, parse_route_table

GOOD = """\
name: t
duration: 10s
network: {subnet: 10.77.0.0/24}
hosts:
  server:
    role: server
    address: 10.77.0.10
  client:
    role: client
    address: 10.77.0.20
    agent: {connect: "server:7000"}
"""


def problems(tmp_path: Path, text: str, routes: list[Route] | None = None) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, routes)
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def with_server(key: str, value: str) -> str:
    return GOOD.replace("    address: 10.77.0.10\n", f"    address: 10.77.0.10\n    {key}: {value}\n")


@pytest.mark.parametrize(
    ("mac", "why"),
    [
        ('"01:00:5e:00:00:01"', "is a multicast or broadcast MAC (the first octet's lowest bit is set)"),
        ('"ff:ff:ff:ff:ff:ff"', "is a multicast or broadcast MAC"),
        ('"03:42:0a:4d:00:0a"', "is a multicast or broadcast MAC"),
        ('"00:00:00:00:00:00"', "00:00:00:00:00:00 is no host's MAC"),
    ],
)
def test_macs_a_host_cannot_have(tmp_path: Path, mac: str, why: str) -> None:
    [found] = problems(tmp_path, with_server("mac", mac))
    assert found.startswith("8: hosts.server.mac: ") and why in found, found


def test_a_unicast_mac_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(with_server("mac", '"02:42:0A:4D:00:0A"'))
    assert load_scenario(path).hosts["server"].effective_mac == "02:42:0a:4d:00:0a"


@pytest.mark.parametrize(
    ("subnet", "what"),
    [
        ("0.0.0.0/1", "includes the unspecified addresses"),
        ("0.0.0.0/29", "includes the unspecified addresses"),
        ("127.77.0.0/24", "includes loopback"),
        ("169.254.0.0/24", "includes link-local"),
        ("224.0.0.0/24", "includes multicast"),
        ("255.255.255.0/29", "includes reserved"),
        ("8.8.8.0/24", "is not private"),
        ("100.64.0.0/24", "is not private"),
        ("172.32.0.0/24", "is not private"),
        ("8.0.0.0/6", "is not private"),  # holds 10.0.0.0/8, but is not inside it
    ],
)
def test_subnets_that_are_not_private_are_refused(tmp_path: Path, subnet: str, what: str) -> None:
    found = problems(tmp_path, GOOD.replace("10.77.0.0/24", subnet))
    assert found[0].startswith(f"3: network.subnet: {subnet} {what}"), found
    assert "must be private (RFC 1918), inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16" in found[0]


@pytest.mark.parametrize("subnet", ["10.0.0.0/8", "172.16.5.0/24", "192.168.200.0/29"])
def test_private_subnets_load(tmp_path: Path, subnet: str) -> None:
    net = ipaddress.IPv4Network(subnet)
    text = GOOD.replace("10.77.0.0/24", subnet)
    text = text.replace("10.77.0.10", str(net.network_address + 2)).replace(
        "10.77.0.20", str(net.network_address + 3)
    )
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert load_scenario(path).network.subnet == net


@pytest.mark.parametrize(
    "image",
    ["--privileged", "-x", "Tcpscen/Agent", "a b", "a:", ":tag", "a//b", "a:-1", "a@sha256:12", "x" * 600],
)
def test_images_that_are_not_references(tmp_path: Path, image: str) -> None:
    [found] = problems(tmp_path, with_server("image", f'"{image}"'))
    assert found.startswith("8: hosts.server.image: "), found
    assert "is not an image reference: expected [registry/]name[:tag][@digest] in lower case" in found


@pytest.mark.parametrize(
    "image",
    [
        "tcpscen/agent",
        "debian:bookworm-slim",
        "localhost:5000/team/img:1.2",
        "Registry.Example.com/a/b",
        "busybox@sha256:" + "ab" * 32,
        "a_b.c-d__e:T_1.x",
    ],
)
def test_image_references_load(tmp_path: Path, image: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(with_server("image", f'"{image}"'))
    assert load_scenario(path).hosts["server"].image == image


@pytest.mark.parametrize(
    "name", [r'"\e[2Jgone"', r'"a\x07b"', r'"x\u009b31m"', r'"two\nlines"', r'"evil\u202eexe"']
)
def test_control_characters_in_the_name_are_refused(tmp_path: Path, name: str) -> None:
    [found] = problems(tmp_path, GOOD.replace("name: t", f"name: {name}"))
    assert found.startswith("1: name: control character "), found


def test_a_description_may_have_lines_but_no_escapes(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("name: t", 'name: "[bold] t [/]"\ndescription: "two\\n\\tlines"'))
    assert load_scenario(path).description == "two\n\tlines"
    [found] = problems(tmp_path, GOOD.replace("name: t", 'description: "\\e]8;;http://x\\e\\\\link"'))
    assert found.startswith("1: description: control character '\\x1b' at position 0"), found


# /proc/net/route as the kernel writes it on a little-endian machine (this table: x86).
TABLE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br-0123456789ab\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
tun0\t0000080A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth1\t0000000B\t00000000\t0000\t0\t0\t0\t000000FF\t0\t0\t0
eth2\t0000000C\t00000000\t0201\t0\t0\t0\t000000FF\t0\t0\t0
garbage line
"""


def test_route_table_is_parsed_in_the_kernels_byte_order() -> None:
    routes = parse_route_table(TABLE)
    assert [(r.interface, str(r.network), r.gateway) for r in routes] == [
        ("wlan0", "0.0.0.0/0", ipaddress.IPv4Address("192.168.1.1")),
        ("wlan0", "192.168.1.0/24", None),
        ("docker0", "172.17.0.0/16", None),
        ("br-0123456789ab", "10.77.0.0/24", None),
        ("tun0", "10.8.0.0/16", None),
    ]  # eth1 is down, eth2 a reject route: neither is where traffic goes
    assert [r.engines for r in routes] == [False, False, True, True, False]


def test_subnets_over_the_hosts_own_routes_are_refused(tmp_path: Path) -> None:
    routes = parse_route_table(TABLE)
    text = GOOD.replace("10.77.0.0/24", "192.168.0.0/16")
    text = text.replace("10.77.0.10", "192.168.50.10").replace("10.77.0.20", "192.168.50.20")
    found = problems(tmp_path, text, routes)
    assert sorted(found) == [
        "3: network.subnet: 192.168.0.0/16 holds the host's gateway 192.168.1.1 (on wlan0): "
        "the scenario's network would hide it; choose another private subnet",
        "3: network.subnet: 192.168.0.0/16 overlaps the host's network 192.168.1.0/24 (on wlan0): "
        "the scenario's network would hide it; choose another private subnet",
    ]
    vpn = GOOD.replace("10.77.0.0/24", "10.8.3.0/24").replace("10.77.0.", "10.8.3.")
    assert [p.split(" (on ")[1][:4] for p in problems(tmp_path, vpn, routes)] == ["tun0"]


def test_routes_of_the_engines_bridges_and_the_default_route_are_no_reason_to_refuse(tmp_path: Path) -> None:
    """10.77.0.0/24 is on a tcpscen bridge (br-...), 172.17.0.0/16 on docker0: a run relocates
    there; the default route covers everything, so only its gateway counts."""
    routes = parse_route_table(TABLE)
    for subnet, prefix in (("10.77.0.0/24", "10.77.0."), ("172.17.3.0/24", "172.17.3.")):
        path = tmp_path / "s.yaml"
        path.write_text(GOOD.replace("10.77.0.0/24", subnet).replace("10.77.0.", prefix))
        assert str(load_scenario(path, routes).network.subnet) == subnet


def test_without_routes_nothing_is_checked_and_a_missing_table_is_none(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("10.77.0.0/24", "192.168.1.0/24").replace("10.77.0.", "192.168.1."))
    assert load_scenario(path).network.subnet == ipaddress.IPv4Network("192.168.1.0/24")
    assert host_routes(tmp_path / "absent") == []


@pytest.mark.parametrize(
    ("limits", "memory", "pids"),
    [
        ("{memory: 1g, pids: 512}", 1024**3, 512),
        ('{memory: "1.5GiB"}', int(1.5 * 1024**3), 256),
        ("{memory: 64m}", 64 * 1024**2, 256),
        ("{pids: 16}", 512 * 1024**2, 16),
    ],
)
def test_a_hosts_limits_take_units(tmp_path: Path, limits: str, memory: int, pids: int) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(with_server("limits", limits))
    loaded = load_scenario(path)
    assert (loaded.hosts["server"].limits.memory, loaded.hosts["server"].limits.pids) == (memory, pids)
    assert loaded.hosts["client"].limits.memory == 512 * 1024**2  # the default: 512 MiB, 256 pids


@pytest.mark.parametrize(
    ("limits", "why"),
    [
        ("{memory: 512}", "512 has no unit: write 512m or 512g (a size needs its unit)"),
        ("{memory: 1t}", "expected a size such as 512m or 1g, got '1t'"),
        ("{memory: 4m}", "4m: memory must be between 32m and 64g"),
        ("{memory: 100g}", "100g: memory must be between 32m and 64g"),
        ("{pids: 1}", "greater than or equal to 16"),
        ("{pids: 100000}", "less than or equal to 32768"),
        ("{cpu: 2}", "cpu"),
    ],
)
def test_limits_a_host_cannot_have(tmp_path: Path, limits: str, why: str) -> None:
    [found] = problems(tmp_path, with_server("limits", limits))
    assert found.startswith("8: hosts.server.limits.") and why in found, found
