"""The images: a Debian base (built offline with mmdebstrap, or from a registry) and the agent layer.

Tags carry a hash of their recipe, so building twice reuses the image and a changed agent rebuilds.
The agent's recipe is images/agent/ plus the wire format it shares with the orchestrator
(orchestrator/agent/wire.py), which its build context gets next to agent.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from orchestrator.agent import wire
from orchestrator.backend.docker import labels
from orchestrator.backend.docker.engine import ENGINE_ERRORS, engine_error
from orchestrator.errors import EngineError

BASE_REPO = "tcpscen/base"
AGENT_REPO = "tcpscen/agent"
SUITE = "bookworm"


@dataclass(frozen=True)
class Images:
    base: str
    agent: str


def recipes_dir() -> Path:
    """images/ in a checkout, or the copy packed into the wheel."""
    here = Path(__file__).resolve().parents[2]  # the orchestrator package
    for candidate in (here.parent / "images", here / "_images"):
        if (candidate / "agent" / "agent.py").is_file():
            return candidate
    raise EngineError("the image recipes (images/agent/agent.py) are missing from this installation")


def wanted_images() -> Images:
    recipes = recipes_dir()
    base = f"{BASE_REPO}:{SUITE}-{_digest(_files(recipes / 'base'))}"
    # TCPSCEN_IMAGE_SALT gives the agent layer a fresh tag, so it is built again, its steps run
    # rather than taken from the cache (the SALT build argument): tests interrupt a run then.
    agent = f"{AGENT_REPO}:{_digest(agent_context(), extra=base + _salt())}"
    return Images(base=base, agent=agent)


def agent_context() -> dict[str, Path]:
    """The agent's build context, name in it -> file: images/agent/, and wire.py from the package
    (its one copy; the Dockerfile copies it next to agent.py, which imports it)."""
    return {**_files(recipes_dir() / "agent"), "wire.py": Path(wire.__file__)}


def ensure_images(client: docker.DockerClient, say: Callable[[str], None]) -> Images:
    images = wanted_images()
    if not _exists(client, images.base):
        source = image_source()
        say(f"building {images.base} from Debian packages ({source})")
        _build_base(client, images.base, source)
    if not _exists(client, images.agent):
        say(f"building {images.agent}")
        _build_agent(client, images)
    client.images.get(images.agent).tag(AGENT_REPO, "latest")
    return images


def image_source() -> str:
    """debian: mmdebstrap + docker import (no registry needed); registry: Dockerfile FROM debian."""
    chosen = os.environ.get("TCPSCEN_IMAGE_SOURCE", "auto")
    if chosen not in ("auto", "debian", "registry"):
        raise EngineError(f"TCPSCEN_IMAGE_SOURCE={chosen!r}: use auto, debian or registry")
    if chosen == "auto":
        return "debian" if shutil.which("mmdebstrap") else "registry"
    return chosen


def resolve_image(name: str, images: Images) -> str:
    return images.agent if name in (AGENT_REPO, f"{AGENT_REPO}:latest") else name


def _build_base(client: docker.DockerClient, tag: str, source: str) -> None:
    recipes = recipes_dir() / "base"
    repo, _, version = tag.partition(":")
    if source == "registry":
        try:
            client.images.build(
                path=str(recipes), tag=tag, pull=True, rm=True, forcerm=True, labels={labels.IMAGE: "base"}
            )
        except ENGINE_ERRORS as exc:
            raise engine_error(
                exc, f"building {tag} from {recipes}/Dockerfile (is a registry reachable?)"
            ) from None
        return
    if shutil.which("mmdebstrap") is None:
        raise EngineError(
            "mmdebstrap is not installed: `apt-get install mmdebstrap`, or TCPSCEN_IMAGE_SOURCE=registry"
        )
    packages = ",".join(_packages(recipes / "packages.txt"))
    with tempfile.TemporaryDirectory(prefix="tcpscen-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        cmd = ["mmdebstrap", "--variant=apt", f"--include={packages}", SUITE, str(tarball)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise EngineError(f"mmdebstrap failed (exit {done.returncode}):\n{tail}")
        try:
            client.api.import_image_from_file(str(tarball), repository=repo, tag=version)
        except ENGINE_ERRORS as exc:
            raise engine_error(exc, f"importing {tag}") from None


def _build_agent(client: docker.DockerClient, images: Images) -> None:
    with tempfile.TemporaryDirectory(prefix="tcpscen-agent-") as tmp:
        for name, source in agent_context().items():
            target = Path(tmp) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        try:
            client.images.build(
                path=tmp,
                tag=images.agent,
                buildargs={"BASE": images.base, "SALT": _salt()},
                pull=False,
                rm=True,
                forcerm=True,  # a failed step's container too: the legacy builder leaves it otherwise
                labels={labels.IMAGE: "agent"},
            )
        except ENGINE_ERRORS as exc:
            raise engine_error(exc, f"building {images.agent}") from None


def _salt() -> str:
    return os.environ.get("TCPSCEN_IMAGE_SALT", "")


def _exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    except ENGINE_ERRORS as exc:
        raise engine_error(exc, f"looking up {tag}") from None
    return True


def _packages(path: Path) -> list[str]:
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def _files(folder: Path) -> dict[str, Path]:
    """A recipe folder's files by their path in it, leaving out Python's caches."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {p.relative_to(folder).as_posix(): p for p in paths}


def _digest(files: dict[str, Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for name in sorted(files):
        h.update(name.encode())
        h.update(files[name].read_bytes())
    return h.hexdigest()[:12]
