"""Least privilege, checked on the containers of real runs while they run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from orchestrator.backend.docker.engine import connect_engine
from orchestrator.backend.docker.router import router_pcap
from orchestrator.backend.docker.sampler import samples_name
from orchestrator.capture.tcpdump import pcap_name
from orchestrator.scenario.loader import load_scenario
from orchestrator.scenario.model import RouterHost
from orchestrator.scenario.topology import attachments
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.engine


def watch(scenario: str, runs_dir: Path) -> dict[str, dict[str, Any]]:
    """Inspect every container of the run, as often as possible while it runs."""
    client = connect_engine()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(ROOT / f"scenarios/{scenario}.yaml"),
            "--runs-dir",
            str(runs_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: dict[str, dict[str, Any]] = {}
    while proc.poll() is None:
        try:
            # Its own containers only: the engine may be running other people's runs.
            found = client.containers.list(all=True, filters={"label": f"tcpscen.owner.pid={proc.pid}"})
        except docker.errors.NotFound:  # listed, then removed by the run before the SDK inspected it
            continue
        for c in found:
            if c.name and c.name not in seen:
                seen[c.name] = c.attrs
        time.sleep(0.05)
    assert proc.returncode == 0
    return seen


def own_files(scenario: str, host: str, boot: int) -> list[str]:
    """What a host container may write: its capture and its socket samples; a router, a capture
    per network (its ruleset and logs stay inside it until tcpscen reads them out)."""
    spec = load_scenario(ROOT / f"scenarios/{scenario}.yaml")
    if isinstance(spec.hosts[host], RouterHost):
        nets = attachments(spec, host)
        return [router_pcap(host, net, boot) for net in nets]
    return [pcap_name(host, boot), samples_name(host, boot)]


def part(attrs: dict[str, Any]) -> str:
    return str(attrs["Config"]["Labels"].get("tcpscen.part"))


@pytest.mark.parametrize(
    ("scenario", "admin_hosts"),
    [
        ("middlebox_reject", {"server"}),
        ("blackhole_one_way", set()),
        ("http_kill9_nc", set()),
        ("lb_idle_reset", {"lb"}),
    ],
)
def test_containers_have_only_what_they_need(scenario: str, admin_hosts: set[str], tmp_path: Path) -> None:
    seen = watch(scenario, tmp_path)
    parts = {part(a) for a in seen.values()}
    assert {"host", "app"} <= parts, parts
    run_dir = next(tmp_path.iterdir()).resolve()
    for name, attrs in seen.items():
        host_config = attrs["HostConfig"]
        assert host_config["Privileged"] is False, name
        assert host_config["CapDrop"] == ["ALL"], name
        assert host_config["Memory"] > 0 and host_config["PidsLimit"] > 0, f"{name} has no limits"
        caps = set(host_config["CapAdd"] or [])
        mounts = [(m["Type"], m["Source"]) for m in attrs["Mounts"]]
        if part(attrs) == "host":
            wanted = (
                {"NET_RAW", "NET_ADMIN"}
                if attrs["Config"]["Labels"]["tcpscen.host"] in admin_hosts
                else {"NET_RAW"}
            )
            assert caps == wanted, (name, caps)
            # Its own files alone, each made by tcpscen: the capture can write nothing else.
            boot = int(name.rsplit("-", 1)[1])
            host = attrs["Config"]["Labels"]["tcpscen.host"]
            wanted_files = own_files(scenario, host, boot)
            assert sorted(mounts) == sorted(("bind", str(run_dir / f)) for f in wanted_files), (name, mounts)
            user = attrs["Config"]["User"]
            assert user and user.split(":")[0] not in ("0", "root"), "the capture does not run as root"
        elif part(attrs) == "app":
            # A traced program writes its syscall trace, its one mount: nothing else of the run.
            traced = (attrs["Config"]["Entrypoint"] or [])[-1:] == ["/.tcpscen-observe.sh"]
            host = attrs["Config"]["Labels"]["tcpscen.host"]
            n = name.rsplit("-", 1)[1]
            trace = f"{host}.syscalls.txt" if n == "1" else f"{host}.syscalls.{n}.txt"
            assert caps == set() and mounts == ([("bind", str(run_dir / trace))] if traced else []), name
            assert traced == (scenario == "http_kill9_nc"), name
            assert attrs["Config"]["User"] == "65534:65534"
            assert host_config["NetworkMode"].startswith("container:")
        elif part(attrs) == "link":
            assert caps == {"NET_ADMIN"} and mounts == [], name
            assert host_config["NetworkMode"] == "host"
        elif part(attrs) == "route":  # a host's default route through its router, set once
            assert caps == {"NET_ADMIN"} and mounts == [], name
            assert host_config["NetworkMode"].startswith("container:")
        elif part(attrs) == "forward":  # DOCKER-USER rules (iptables-legacy needs NET_RAW)
            assert caps == {"NET_ADMIN", "NET_RAW"} and mounts == [], name
            assert host_config["NetworkMode"] == "host"
        else:
            pytest.fail(f"unexpected container {name} ({part(attrs)})")
    if scenario == "lb_idle_reset":
        assert {"route", "forward"} <= parts, parts
    if scenario == "blackhole_one_way":
        assert "link" in parts, "the blackhole is set from the wire helper"
