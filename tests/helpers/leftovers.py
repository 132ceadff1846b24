"""What a tcpscen process left on the engine, found by its owner labels, so that a test judges its
own run alone: the engine is shared (other runs, other test sessions) and theirs must not count."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import docker.errors

from orchestrator.backend.docker.bridge import TABLE_PREFIX, run_nft, table_name
from orchestrator.backend.docker.engine import connect_engine
from orchestrator.backend.docker.images import wanted_images


def nft_tables(client: docker.DockerClient | None = None) -> dict[str, str]:
    """Every tcpscen_ table in the bridge family, name -> its listing (from a throwaway helper
    that carries no run label, so no clean takes it for a run's)."""
    client = client or connect_engine()
    helper = client.containers.run(
        wanted_images().agent,
        ["sleep", "30"],
        network_mode="host",
        cap_drop=["ALL"],
        cap_add=["NET_ADMIN"],
        detach=True,
        labels={"tcpscen.probe": "1"},
    )
    try:
        names = [t for t in run_nft(helper, "list tables bridge").split() if t.startswith(TABLE_PREFIX)]
        return {name: _listing(helper, name) for name in names}
    finally:
        helper.remove(force=True)


def _listing(helper: docker.models.containers.Container, name: str) -> str:
    try:
        return run_nft(helper, f"list table bridge {name}")
    except RuntimeError:  # deleted meanwhile
        return ""


def run_ids(runs_dir: Path) -> list[str]:
    """The run ids of every run directory below (the journal's first line names it)."""
    ids = []
    for timeline in runs_dir.glob("*/timeline.jsonl"):
        lines = timeline.read_text().splitlines()
        if lines:
            ids.append(json.loads(lines[0])["run_id"])
    return ids


def left_by(pid: int, runs_dir: Path) -> tuple[list[str], list[str], list[str]]:
    """(containers, networks, nft tables) of the tcpscen process `pid`, whose runs went to runs_dir."""
    client = connect_engine()
    mine = {"label": f"tcpscen.owner.pid={pid}"}
    containers = [c["Names"][0].lstrip("/") for c in client.api.containers(all=True, filters=mine)]
    networks = [n["Name"] for n in client.api.networks(filters=mine)]
    tables = {table_name(run_id) for run_id in run_ids(runs_dir)}
    return containers, networks, sorted(tables & set(nft_tables(client)))


def world_writable(runs_dir: Path) -> list[str]:
    return [str(p) for p in [runs_dir, *runs_dir.rglob("*")] if p.lstat().st_mode & 0o002]
